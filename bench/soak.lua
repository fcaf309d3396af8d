-- Paces each wrk connection for scripts/soak: it waits SOAK_GAP_MS milliseconds before
-- each request. wrk waits in whole milliseconds, so a fractional gap is rounded up or down
-- at random in the proportion that makes the average exact.
local gap = tonumber(os.getenv("SOAK_GAP_MS")) or 0
local whole = math.floor(gap)
local fraction = gap - whole

function delay()
   if math.random() < fraction then
      return whole + 1
   end
   return whole
end
