//! The `kraliki` command line: serve, migrate, operate projections, export events (and start the
//! benchmarks, which live in the `bench` crate).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kraliki_projections::builds::{self, BuildStatus};
use kraliki_projections::{status, Supervisor, Wake};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::startup::{event_sink, projections, runner_settings, Application};

#[derive(Debug, Parser)]
#[command(name = "kraliki", version, about = "Kraliki Voice: an event-sourced AI call-center backend")]
pub struct Cli {
    /// A TOML settings file (also KRALIKI_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the projection runners.
    Serve {
        /// Listen address (also KRALIKI_BIND); default 127.0.0.1:8000.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Inspect and rebuild projections.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Read the event log.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Measure appends, rebuild throughput, projection lag, imports and the media bridge
    /// against baselines run side by side: runs `kraliki-bench` (the `bench` crate, built next
    /// to this binary: `cargo build --release -p kraliki-bench`) with these arguments.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage the JWT signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Demo data.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user in an existing company (`--company ID`) or a new one (`--new-company NAME`).
    Create {
        #[arg(long)]
        email: String,
        /// Read from KRALIKI_NEW_PASSWORD when not given, so it stays out of shell history.
        #[arg(long, env = "KRALIKI_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long)]
        full_name: String,
        /// Repeatable: agent, auditor, analyst, supervisor, admin, platform_operator.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long, conflicts_with = "new_company")]
        company: Option<uuid::Uuid>,
        #[arg(long)]
        new_company: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key; older public keys keep verifying until removed.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Create the demo company and the seed's test users (testuser@example.com / test123,
    /// admin@example.com, agent@example.com). Refused in production.
    Seed,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Builds, positions, lag and rebuild progress.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a projection from the start of the log into fresh tables; the serving build keeps
    /// serving until the new one has caught up. Shows progress until the switch-over.
    Rebuild {
        name: String,
        /// Request the rebuild and return; a running server does the work.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Write events as NDJSON in commit order.
    Export {
        #[arg(long)]
        aggregate_type: Option<String>,
        #[arg(long)]
        aggregate_id: Option<String>,
        /// Repeatable.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// RFC 3339, inclusive.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// RFC 3339, exclusive.
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Bench { args } = &cli.command {
        return bench(cli.config.as_deref(), args);
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kraliki: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kraliki: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kraliki: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `kraliki bench`: the benchmarks live outside the product, in `kraliki-bench`.
fn bench(config: Option<&std::path::Path>, args: &[String]) -> ExitCode {
    let Some(exe) = std::env::current_exe().ok().map(|e| e.with_file_name("kraliki-bench")) else {
        return ExitCode::FAILURE;
    };
    let mut command = std::process::Command::new(&exe);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    match command.args(args).status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!(
                "kraliki: cannot run {} ({e}); build it with `cargo build --release -p kraliki-bench`",
                exe.display()
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { bind } => {
            if let Some(bind) = bind {
                settings.bind = bind;
            }
            Application::build(settings).await?.run_until_stopped().await
        }
        Command::Migrate => {
            let pool = crate::db::connect(&settings).await?;
            crate::db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Projections { command: ProjectionsCommand::Status { json } } => {
            let pool = crate::db::connect(&settings).await?;
            let status = status::read_side(&pool, None).await?;
            if json {
                let builds: Vec<_> = status.builds.iter().map(crate::routes::admin::view).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "barrier_age_ms": status.barrier_age_ms, "builds": builds
                    }))?
                );
            } else {
                println!("barrier age: {:.0} ms", status.barrier_age_ms);
                println!(
                    "{:<20} {:>5} {:>3} {:<9} {:>12} {:>10} {:>10} {:>8}",
                    "projection", "build", "ver", "status", "position", "lag", "lag ms", "done %"
                );
                for r in &status.builds {
                    let b = &r.build;
                    println!(
                        "{:<20} {:>5} {:>3} {:<9} {:>12} {:>10} {:>10.0} {:>7.1}%",
                        b.name,
                        b.build_id,
                        b.version,
                        format!("{:?}", b.status).to_lowercase(),
                        b.checkpoint.pos,
                        r.lag_events,
                        r.lag_ms,
                        r.progress * 100.0
                    );
                }
            }
            Ok(())
        }
        Command::Projections { command: ProjectionsCommand::Rebuild { name, no_wait } } => {
            rebuild(settings, &name, no_wait).await
        }
        Command::Events {
            command:
                EventsCommand::Export { aggregate_type, aggregate_id, event_types, tenant, since, until, output },
        } => {
            let pool = crate::db::connect(&settings).await?;
            let filter = crate::export::ExportFilter {
                aggregate_type,
                aggregate_id,
                event_types,
                tenant,
                since,
                until,
            };
            let count = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    crate::export::export(&pool, &filter, &mut out).await?
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    crate::export::export(&pool, &filter, &mut out).await?
                }
            };
            eprintln!("exported {count} events");
            Ok(())
        }
        Command::Bench { .. } => anyhow::bail!("`kraliki bench` runs kraliki-bench"),
        Command::Keys { command: KeysCommand::Rotate } => {
            let kid = crate::auth::keys::generate(&settings.keys_dir())?;
            println!("new signing key {kid} in {}", settings.keys_dir().display());
            Ok(())
        }
        Command::Users {
            command: UsersCommand::Create { email, password, full_name, roles, company, new_company },
        } => {
            use kraliki_domain::values::{Email, Password, PersonName, Role};
            let pool = crate::db::connect(&settings).await?;
            let dispatcher = kraliki_commands::Dispatcher::new(pool.clone(), Wake::new());
            let email = Email::parse(&email)?;
            let roles = roles.iter().map(|r| Role::parse(r)).collect::<Result<_, _>>()?;
            let company_id = match (company, new_company) {
                (Some(id), _) => id,
                (None, Some(name)) => {
                    crate::auth::users::create_company(&dispatcher, &name, email.domain(), "cli").await?
                }
                (None, None) => anyhow::bail!("give --company ID or --new-company NAME"),
            };
            let new = crate::auth::users::NewUser {
                company_id,
                email,
                password: Password::parse(&password)?,
                full_name: PersonName::parse(&full_name)?,
                roles,
            };
            let ctx = kraliki_commands::CommandContext::new(company_id.to_string(), "cli");
            let (id, _) =
                crate::auth::users::create(&pool, &dispatcher, settings.auth.bcrypt_cost, new, &ctx).await?;
            println!("user {id} created in company {company_id}");
            Ok(())
        }
        Command::Demo { command: DemoCommand::Seed } => demo_seed(settings).await,
    }
}

/// The demo company and the seed's test users; refused in production.
pub async fn demo_seed(settings: Settings) -> anyhow::Result<()> {
    use kraliki_domain::values::{Email, Password, PersonName, Role};
    if settings.environment == crate::config::Environment::Production {
        anyhow::bail!("the demo seed is refused in production");
    }
    let pool = crate::db::connect(&settings).await?;
    crate::db::migrate(&pool).await?;
    let dispatcher = kraliki_commands::Dispatcher::new(pool.clone(), Wake::new());
    let users = [
        ("testuser@example.com", "test123", "Test User", Role::Admin),
        ("admin@example.com", "AdminPassword123!", "Admin User", Role::Admin),
        ("agent@example.com", "AgentPassword123!", "Agent User", Role::Agent),
    ];
    let mut company = None;
    for (email, password, name, role) in users {
        let email = Email::parse(email)?;
        if crate::auth::users::email_taken(&pool, &email).await? {
            println!("{} exists already", email.as_str());
            continue;
        }
        let company_id = match company {
            Some(id) => id,
            None => {
                let id = crate::auth::users::create_company(
                    &dispatcher,
                    "Demo Company",
                    "example.com",
                    "demo-seed",
                )
                .await?;
                company = Some(id);
                id
            }
        };
        let new = crate::auth::users::NewUser {
            company_id,
            email,
            password: Password::unchecked_for_demo(password),
            full_name: PersonName::parse(name)?,
            roles: [role].into(),
        };
        let ctx = kraliki_commands::CommandContext::new(company_id.to_string(), "demo-seed");
        let (id, _) =
            crate::auth::users::create(&pool, &dispatcher, settings.auth.bcrypt_cost, new, &ctx).await?;
        println!("created {} ({}) as {id}", name, role.as_str());
    }
    Ok(())
}

async fn rebuild(settings: Settings, name: &str, no_wait: bool) -> anyhow::Result<()> {
    let pool = crate::db::connect(&settings).await?;
    let (sink, _) = event_sink(&settings).await?;
    let wake = Wake::new();
    let supervisor =
        Supervisor::new(pool.clone(), wake.clone(), runner_settings(&settings), projections(sink));
    let projection = supervisor.projection(name).with_context(|| {
        let known: Vec<_> = supervisor.projections().iter().map(|p| p.name()).collect();
        format!("no projection named {name}; known: {}", known.join(", "))
    })?;
    let build = builds::request_rebuild(&pool, projection.as_ref()).await?;
    println!("rebuilding {name} as build {}", build.build_id);
    if no_wait {
        return Ok(());
    }
    // Work on it here too: whichever process holds the build's lock does the work, the other
    // stands by. Progress comes from the build's row either way.
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let listener = tokio::spawn(wake.clone().run(pool.clone(), stop.clone()));
    let worker = {
        let supervisor = supervisor.clone();
        let build = build.clone();
        tokio::spawn(async move { supervisor.run_build(projection, build, shutdown).await })
    };
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} events ({per_sec}, ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let outcome = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Err(anyhow::anyhow!("interrupted; the rebuild continues in any running server")),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let mut conn = pool.acquire().await?;
        let Some(now) = builds::get(&mut conn, name, build.build_id).await? else {
            break Err(anyhow::anyhow!("build {} disappeared", build.build_id));
        };
        drop(conn);
        let total = status::total_events(&pool).await?.max(now.events_done) as u64;
        bar.set_length(total.max(1));
        bar.set_position(now.events_done as u64);
        bar.set_message(format!("{name} build {} {:?}", now.build_id, now.status).to_lowercase());
        match now.status {
            BuildStatus::Active => break Ok(now),
            BuildStatus::Retired => {
                break Err(anyhow::anyhow!("build {} was retired before it finished", now.build_id))
            }
            BuildStatus::Building => {}
        }
    };
    bar.finish_and_clear();
    stop.cancel();
    let _ = worker.await;
    let _ = listener.await;
    let done = outcome?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name}: build {} serves reads; {} events in {:.2} s ({:.0} events/s)",
        done.build_id,
        done.events_done,
        secs,
        done.events_done as f64 / secs.max(1e-9)
    );
    Ok(())
}
