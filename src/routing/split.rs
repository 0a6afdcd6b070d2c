//! The `split` step: sticky weighted choice. The branch is picked from a
//! stable 64-bit FNV-1a hash of the step id and the key's value, so the same
//! caller always lands on the same branch, across restarts and instances.

use serde_json::Value;

use super::plan::SplitArm;

/// Picks the arm for `key` (`None`, an undefined key, hashes as empty).
pub(crate) fn pick<'a>(
    step_id: &str,
    key: Option<&Value>,
    arms: &'a [SplitArm],
    total: u64,
) -> &'a SplitArm {
    let mut hash = Fnv::new();
    hash.write(step_id.as_bytes());
    hash.write(&[0]);
    match key {
        Some(Value::String(s)) => hash.write(s.as_bytes()),
        Some(other) => hash.write(other.to_string().as_bytes()),
        None => {}
    }
    let mut point = hash.0 % total;
    for arm in arms {
        let weight = u64::from(arm.weight);
        if point < weight {
            return arm;
        }
        point -= weight;
    }
    arms.last().expect("a split has at least one arm")
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arms(weights: &[u32]) -> Vec<SplitArm> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| SplitArm {
                name: format!("b{i}"),
                weight: *w,
                next: i,
            })
            .collect()
    }

    #[test]
    fn sticky_and_weighted() {
        let arms = arms(&[70, 30, 0]);
        let total = 100;
        let mut counts = [0usize; 3];
        for n in 0..20_000 {
            let caller = Value::String(format!("+1415555{n:04}"));
            let first = pick("ab", Some(&caller), &arms, total).next;
            assert_eq!(
                pick("ab", Some(&caller), &arms, total).next,
                first,
                "sticky"
            );
            counts[first] += 1;
        }
        assert_eq!(counts[2], 0, "a zero weight never wins");
        let share = counts[0] as f64 / 20_000.0;
        assert!((0.67..0.73).contains(&share), "70% arm got {share}");
    }

    #[test]
    fn stable_across_builds() {
        // Fixed values: changing the hash would move every caller.
        let arms = arms(&[1, 1]);
        let key = Value::String("+14155550100".into());
        assert_eq!(
            pick("split", Some(&key), &arms, 2).name,
            pick("split", Some(&key), &arms, 2).name
        );
        let mut h = Fnv::new();
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
    }
}
