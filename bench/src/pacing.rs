//! The pacing figures (`--only pacing`): the dialer's own pacing code in the seeded simulation
//! of a campaign's day (`domain::pacing::sim`), predictive beside progressive at the same answer
//! rates — the baseline is progressive dialing of the same agents, contacts and talk times.

use kraliki_domain::campaign::DialingMode;
use kraliki_domain::pacing::sim::{simulate, SimConfig};

/// 50 agents, 8 simulated hours, answer rates 20 / 35 / 50 %, three seeds each.
pub fn run() {
    println!("pacing, 50 agents, 8 simulated hours, 3 seeds per rate (predictive vs progressive):");
    println!(
        "  {:<7} {:>22} {:>22} {:>11} {:>22} {:>14}",
        "answer", "occupancy pred/prog", "ratio", "abandon", "max day abandon", "calls/agent·h"
    );
    for rate in [0.20, 0.35, 0.50] {
        let (mut pred_occ, mut prog_occ, mut abandon, mut max_abandon, mut cph) =
            (Vec::new(), Vec::new(), 0.0f64, 0.0f64, Vec::new());
        for seed in 1..=3u64 {
            let config =
                |mode| SimConfig { seed, mode, agents: 50, human_answer_rate: rate, ..SimConfig::default() };
            let predictive = simulate(&config(DialingMode::Predictive));
            let progressive = simulate(&config(DialingMode::Progressive));
            pred_occ.push(predictive.occupancy);
            prog_occ.push(progressive.occupancy);
            abandon = abandon.max(predictive.abandonment_rate);
            max_abandon = max_abandon.max(predictive.max_day_abandonment_rate);
            cph.push(predictive.calls_per_agent_hour);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "  {:<7} {:>10.3} / {:<10.3} {:>22.2} {:>10.2}% {:>21.2}% {:>14.1}",
            format!("{:.0}%", rate * 100.0),
            mean(&pred_occ),
            mean(&prog_occ),
            mean(&pred_occ) / mean(&prog_occ),
            abandon * 100.0,
            max_abandon * 100.0,
            mean(&cph)
        );
    }
}
