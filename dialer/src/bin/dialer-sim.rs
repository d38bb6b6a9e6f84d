//! `dialer-sim`: try pacing settings on a simulated working day before using them on the
//! floor, or (`--bench`) run the pacing benchmark and print it as a markdown table.
//!
//! ```text
//! dialer-sim --agents 20 --answer-rate 0.25 --mode ratio:3
//! dialer-sim --agents 50 --drifting --mode adaptive --cap 0.03
//! dialer-sim --bench
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use dialer::erlang;
use dialer::sim::{self, AnswerCurve, Policy, SimConfig, SimReport};
use dialer::vicidial::AdaptAverageConfig;
use dialer::{PacingConfig, PacingMode};

#[derive(Debug, Parser)]
#[command(about = "Simulate a site's working day under a pacing setting (外呼节奏模拟)")]
struct Args {
    /// Agents signed in for predictive calls (可回接).
    #[arg(long, default_value_t = 20)]
    agents: u32,
    /// Share of dials the customer answers, 0..1.
    #[arg(long, default_value_t = 0.25)]
    answer_rate: f64,
    /// Use a day whose answer rate drifts (15 % -> 35 % -> 20 % -> 40 %) instead.
    #[arg(long)]
    drifting: bool,
    /// Pacing: `ratio:N` (the manual's 1:N), `progressive`, `adaptive`, or `vicidial`.
    #[arg(long, default_value = "adaptive")]
    mode: String,
    /// Abandon cap for adaptive pacing (0.03 = 3 %).
    #[arg(long, default_value_t = 0.03)]
    cap: f64,
    /// Most calls in progress (the caller number's lines).
    #[arg(long, default_value_t = 1000)]
    max_concurrency: u32,
    /// Cool-down seconds between an agent's calls (manual: 3-5).
    #[arg(long, default_value_t = 3)]
    cool_down: u64,
    /// Queue timeout seconds (manual: 35-40).
    #[arg(long, default_value_t = 35)]
    queue_timeout: u64,
    /// Hours in the working day.
    #[arg(long, default_value_t = 8.0)]
    hours: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run the pacing benchmark (50 agents; 10 %, 25 %, 40 % and a drifting day).
    #[arg(long)]
    bench: bool,
}

fn pacing(
    mode: PacingMode,
    max_concurrency: u32,
    cool_down: u64,
    queue_timeout: u64,
) -> PacingConfig {
    PacingConfig {
        mode,
        max_concurrency,
        cool_down: Duration::from_secs(cool_down),
        queue_timeout: Duration::from_secs(queue_timeout),
        abandon_threshold: Duration::from_secs(2),
    }
}

fn parse_mode(mode: &str, cap: f64) -> anyhow::Result<(PacingMode, Policy)> {
    if let Some(ratio) = mode.strip_prefix("ratio:") {
        let ratio: u32 = ratio.parse().with_context(|| {
            format!("--mode {mode}: the ratio after \"ratio:\" must be a whole number 1..10")
        })?;
        if !(1..=10).contains(&ratio) {
            bail!("--mode {mode}: the manual allows ratios 1:1 to 1:10");
        }
        return Ok((PacingMode::FixedRatio { ratio }, Policy::Core));
    }
    match mode {
        "progressive" => Ok((PacingMode::Progressive, Policy::Core)),
        "adaptive" => {
            if !(0.0..1.0).contains(&cap) || cap == 0.0 {
                bail!("--cap {cap}: give the abandon cap as a fraction between 0 and 1, e.g. 0.03");
            }
            Ok((PacingMode::Adaptive { abandon_cap: cap }, Policy::Core))
        }
        "vicidial" => Ok((
            PacingMode::Progressive,
            Policy::VicidialAdaptAverage(AdaptAverageConfig {
                drop_target: cap,
                ..AdaptAverageConfig::default()
            }),
        )),
        other => bail!("--mode {other}: use ratio:N (1..10), progressive, adaptive or vicidial"),
    }
}

fn print_report(report: &SimReport) {
    println!(
        "occupancy (talk / signed-in available time): {:.1} %",
        report.occupancy * 100.0
    );
    println!(
        "abandon rate (answered, no agent within 2 s):  {:.2} %  ({} of {})",
        report.abandon_rate * 100.0,
        report.abandoned,
        report.answered
    );
    println!(
        "dials per agent-hour:                        {:.1}",
        report.dials_per_agent_hour
    );
    println!(
        "talk minutes per agent-hour:                 {:.1}",
        report.talk_minutes_per_agent_hour
    );
    println!(
        "dials: {}, answered: {}, peak calls in progress: {}",
        report.dials, report.answered, report.peak_in_progress
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.bench {
        return bench(args.seed);
    }
    if args.agents == 0 {
        bail!("--agents 0: simulate at least one agent");
    }
    if !(args.answer_rate > 0.0 && args.answer_rate <= 1.0) {
        bail!(
            "--answer-rate {}: give a fraction above 0 and at most 1, e.g. 0.25",
            args.answer_rate
        );
    }
    if !(args.hours > 0.0 && args.hours <= 24.0) {
        bail!(
            "--hours {}: a working day is between 0 and 24 hours",
            args.hours
        );
    }
    let (mode, policy) = parse_mode(&args.mode, args.cap)?;
    let answer = if args.drifting {
        AnswerCurve::drifting_day()
    } else {
        AnswerCurve::Constant(args.answer_rate)
    };
    let mut config = SimConfig::day(
        args.seed,
        args.agents,
        answer,
        pacing(
            mode,
            args.max_concurrency,
            args.cool_down,
            args.queue_timeout,
        ),
    );
    config.day = Duration::from_secs_f64(args.hours * 3600.0);
    config.policy = policy;
    let started = Instant::now();
    let report = sim::run(&config);
    print_report(&report);
    println!(
        "simulated {:.1} h in {:.2} s",
        args.hours,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One benchmark scenario's results.
struct Row {
    scenario: String,
    best_ratio: Option<(u32, SimReport)>,
    vicidial: SimReport,
    ours: SimReport,
    erlang_occupancy: f64,
    ceiling: f64,
}

const BENCH_AGENTS: u32 = 50;
const BENCH_CAP: f64 = 0.03;
const BENCH_LINES: u32 = 1000;

fn bench(seed: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let scenarios = [
        ("answer 10 %", AnswerCurve::Constant(0.10)),
        ("answer 25 %", AnswerCurve::Constant(0.25)),
        ("answer 40 %", AnswerCurve::Constant(0.40)),
        ("drifting day (15-40 %)", AnswerCurve::drifting_day()),
    ];
    let mut rows = Vec::new();
    for (name, answer) in scenarios {
        let base = |mode: PacingMode| {
            SimConfig::day(
                seed,
                BENCH_AGENTS,
                answer.clone(),
                pacing(mode, BENCH_LINES, 3, 35),
            )
        };
        let mut best_ratio: Option<(u32, SimReport)> = None;
        for ratio in 1..=10 {
            let report = sim::run(&base(PacingMode::FixedRatio { ratio }));
            let better = best_ratio
                .as_ref()
                .is_none_or(|(_, best)| report.occupancy > best.occupancy);
            if report.abandon_rate <= BENCH_CAP && better {
                best_ratio = Some((ratio, report));
            }
        }
        let mut vicidial_config = base(PacingMode::Progressive);
        vicidial_config.policy = Policy::VicidialAdaptAverage(AdaptAverageConfig::default());
        let vicidial = sim::run(&vicidial_config);
        let ours_config = base(PacingMode::Adaptive {
            abandon_cap: BENCH_CAP,
        });
        let ours = sim::run(&ours_config);

        // Erlang C at the cap, with the agents actually signed in and available on average
        // and the service an agent gives while available (talk, pick-up, cool-down).
        let day_seconds = ours_config.day.as_secs_f64();
        let mean_available = (ours.available_seconds / day_seconds).round().max(1.0) as u32;
        let talk = ours_config.talk_mean.as_secs_f64();
        let service = talk + ours_config.pick_up.as_secs_f64() + 3.0;
        let load = erlang::max_load_under_cap(mean_available, service, 2.0, BENCH_CAP);
        let erlang_occupancy = load / f64::from(mean_available) * talk / service;
        let ceiling = talk / service;
        rows.push(Row {
            scenario: name.to_string(),
            best_ratio,
            vicidial,
            ours,
            erlang_occupancy,
            ceiling,
        });
    }

    println!(
        "Pacing benchmark: {BENCH_AGENTS} agents, 8 h day with sign-in, breaks and lunch, talk lognormal mean 120 s, \
         wrap-up ~10 s, cool-down 3 s, abandon = answered and no agent within 2 s, cap {:.0} %, seed {seed}.",
        BENCH_CAP * 100.0
    );
    println!(
        "Occupancy = talk time / signed-in available time. Fixed ratio: ratios 1..10 swept, best = highest occupancy \
         with abandon <= 3 %."
    );
    println!();
    println!(
        "| scenario | fixed ratio (best) | VICIdial ADAPT_AVERAGE | ours (adaptive) | Erlang C at cap | ceiling |"
    );
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let fixed = match &row.best_ratio {
            Some((ratio, report)) => format!("1:{ratio}: {}", cell(report)),
            None => "no ratio within 3 %".to_string(),
        };
        println!(
            "| {} | {} | {} | {} | {:.1} % occ | {:.1} % occ |",
            row.scenario,
            fixed,
            cell(&row.vicidial),
            cell(&row.ours),
            row.erlang_occupancy * 100.0,
            row.ceiling * 100.0
        );
    }
    println!();
    println!(
        "Cells: occupancy / abandon rate / dials per agent-hour. Erlang C: the occupancy if answered calls arrived at \
         random (M/M/N, N = mean available agents) with P(wait > 2 s) <= 3 %. Ceiling: talk / (talk + pick-up + \
         cool-down), an agent handed a call the instant they are free."
    );
    println!();
    println!(
        "({} simulated days in {:.1} s)",
        rows.len() * 12,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cell(report: &SimReport) -> String {
    format!(
        "{:.1} % / {:.2} % / {:.0}",
        report.occupancy * 100.0,
        report.abandon_rate * 100.0,
        report.dials_per_agent_hour
    )
}
