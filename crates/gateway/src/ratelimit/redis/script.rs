//! The decision script: the GCRA of `quota::gcra` run inside Redis over every key of one
//! call, all-or-nothing, in one round trip, with the call's deadline; how a call becomes
//! an invocation (key names, intervals, operations, deadline) and how the script's flat
//! answer becomes decisions, or a failure when it is malformed.

use std::time::Duration;

use super::clock::ClockSync;
use super::keys::{bucket_key, cluster_key};
use super::{RedisStore, StoreError};
use crate::quota::gcra::Decision;
use crate::ratelimit::memory::{Check, Op};

/// The GCRA of `quota::gcra`, in microseconds of Redis's clock. ARGV[1] is the call's deadline
/// on that clock: a script that runs later (Redis was stalled and ran it from its backlog,
/// after the gateway had given up and answered without it) writes nothing and answers
/// `0, now`. Then, per key, three values: the emission interval T and the tolerance tau
/// (both in nanoseconds, so sub-microsecond intervals keep their precision as Lua doubles)
/// and the operation (`0` take, `1` peek, `2` charge, `3` refund; see `memory::Op`).
/// Answers `1, now`, then three integers per key: `1, remaining, reset_us` when admitted,
/// `0, retry_after_us, reset_us` when refused. `now` lets the caller track its offset to
/// Redis's clock. Doubles hold microseconds since 1970 exactly (< 2^53); TATs are stored
/// with `%.0f` because Lua's `tostring` keeps only 14 digits.
pub(super) const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if now > tonumber(ARGV[1]) then return {0, now} end
local out, news = {1, now}, {}
local all_admit = true
for i = 1, #KEYS do
  local t = tonumber(ARGV[3 * i - 1]) / 1000
  local tau = tonumber(ARGV[3 * i]) / 1000
  local op = ARGV[3 * i + 1]
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
  local start = math.max(tat, now)
  local new = start + t
  local ahead = new - now
  if ahead <= tau then
    news[i] = new
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tau - ahead) / t)
    out[#out + 1] = math.ceil(ahead)
  else
    news[i] = false
    if op == '0' or op == '1' then all_admit = false end
    out[#out + 1] = 0
    out[#out + 1] = math.ceil(ahead - tau)
    out[#out + 1] = math.ceil(start - now)
  end
end
for i = 1, #KEYS do
  local op = ARGV[3 * i + 1]
  if op == '3' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
    if tat > now then
      local back = math.max(tat - tonumber(ARGV[3 * i - 1]) / 1000, now)
      redis.call('SET', KEYS[i], string.format('%.0f', back), 'PX', math.ceil((back - now) / 1000) + 1)
    end
  elseif news[i] and ((op == '0' and all_admit) or op == '2') then
    local ttl = math.ceil((news[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.0f', news[i]), 'PX', ttl)
  end
end
return out
";

impl RedisStore {
    /// Runs the decision script on `connection` (a server's or the cluster's), with our
    /// give-up time on Redis's clock as its deadline (a script Redis runs after it writes
    /// nothing), `known` being the clock offset; an "expired" answer that came in time
    /// re-learns the offset and is retried once.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_script(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
        clock: &std::sync::Mutex<ClockSync>,
        checks: &[Check<'_>],
        started: i64,
        timeout_us: i64,
        mut known: i64,
        cluster: bool,
    ) -> Result<Vec<Decision>, StoreError> {
        let mut retried = false;
        loop {
            let deadline = started.saturating_add(timeout_us).saturating_add(known);
            let invocation = self.invocation(checks, deadline, cluster);
            let sent = self.local_us();
            let values: Vec<i64> = invocation
                .invoke_async(connection)
                .await
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            let received = self.local_us();
            match self.note_answer(clock, &values, sent, received, timeout_us) {
                Some(relearned) if !retried => (known, retried) = (relearned, true),
                _ => return parse_answer(&values, checks.len()),
            }
        }
    }

    /// The script call for `checks`, with cluster or standalone key names.
    fn invocation<'s>(
        &'s self,
        checks: &[Check<'_>],
        deadline: i64,
        cluster: bool,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(deadline.to_string());
        for check in checks {
            let interval = check.quota.emission_interval().as_nanos();
            let tau = interval.saturating_mul(u128::from(check.quota.burst));
            let op = match check.op {
                Op::Take => "0",
                Op::Peek => "1",
                Op::Charge => "2",
                Op::Refund => "3",
            };
            let key = if cluster {
                cluster_key(check.key)
            } else {
                bucket_key(check.key)
            };
            invocation
                .key(key)
                .arg(interval.to_string())
                .arg(tau.to_string())
                .arg(op);
        }
        invocation
    }
}

/// Turns the script's flat answer into decisions; anything malformed is a store failure.
/// An answer that the deadline had passed (still so after the retry with the offset it
/// taught, see `note_answer`) is a timeout.
pub(super) fn parse_answer(values: &[i64], expected: usize) -> Result<Vec<Decision>, StoreError> {
    match values {
        [0, _] => return Err(StoreError::Timeout),
        [1, _, rest @ ..] if rest.len() == expected * 3 => {}
        _ => {
            return Err(StoreError::Failed(format!(
                "the script answered {} values for {expected} keys",
                values.len()
            )));
        }
    }
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    Ok(values[2..]
        .chunks_exact(3)
        .map(|chunk| {
            let (admitted, first, reset) = (chunk[0], chunk[1], micros(chunk[2]));
            if admitted == 1 {
                Decision::Allow {
                    remaining: u32::try_from(first).unwrap_or(u32::MAX),
                    reset,
                }
            } else {
                Decision::Deny {
                    retry_after: micros(first),
                    reset,
                }
            }
        })
        .collect())
}
