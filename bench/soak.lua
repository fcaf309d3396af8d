-- Paces each wrk connection for scripts/soak so that one wrk thread sends SOAK_THREAD_RATE
-- requests per second in all, however long a request takes.
--
-- A connection waits `gap` milliseconds before each request. The first gap comes from
-- scripts/soak's calibration (SOAK_GAP_MS); after that the thread steers it: once a second
-- it compares the responses it has had since it started with the number the rate asks for
-- by now, and stretches or shrinks the gap by the shortfall. The comparison is cumulative,
-- so a slow minute is made up later and the average over the run converges on the rate
-- (a fixed gap undershot by a quarter: the gateway's latency moves with the load).
--
-- wrk waits in whole milliseconds, so a fractional gap is rounded up or down at random in
-- the proportion that makes the average exact. os.time() counts whole seconds, which is
-- fine for a correction made once a second over minutes.
local gap = tonumber(os.getenv("SOAK_GAP_MS")) or 0
local rate = tonumber(os.getenv("SOAK_THREAD_RATE")) or 0
local largest_gap = gap * 4 + 1

local started = nil
local checked = nil
local responses = 0

-- How strongly one second's comparison moves the gap: a shortfall of 10 % shrinks it by
-- 5 %, so the correction is smooth and does not oscillate.
local steer = 0.5

local function adjust(now)
   local elapsed = now - started
   if rate <= 0 or elapsed < 2 then
      return
   end
   local wanted = rate * elapsed
   local ahead = (responses - wanted) / wanted
   ahead = math.max(-0.5, math.min(0.5, ahead))
   gap = math.max(0, math.min(largest_gap, gap * (1 + steer * ahead)))
   -- A gap of zero cannot grow by a factor: give it a millisecond to work from.
   if gap == 0 and ahead > 0 then
      gap = 1
   end
end

function delay()
   local now = os.time()
   if started == nil then
      started, checked = now, now
   elseif now ~= checked then
      checked = now
      adjust(now)
   end
   local whole = math.floor(gap)
   if math.random() < gap - whole then
      return whole + 1
   end
   return whole
end

function response(status, headers, body)
   responses = responses + 1
end
