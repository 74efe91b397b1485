//! bcrypt hashing off the async threads, and login throttling shared by all instances.

use chrono::Utc;
use sqlx::PgPool;

use kraliki_domain::values::Password;

pub async fn hash(password: &Password, cost: u32) -> anyhow::Result<String> {
    let plain = password.expose().to_owned();
    Ok(tokio::task::spawn_blocking(move || bcrypt::hash(plain, cost)).await??)
}

/// Verifies `plain` against `hash`; with no hash (unknown user) it verifies against a dummy of
/// the same cost, so both answers take the same time.
pub async fn verify(plain: &str, hash: Option<String>, cost: u32) -> anyhow::Result<bool> {
    let plain = plain.to_owned();
    let known = hash.is_some();
    let hash = match hash {
        Some(h) => h,
        None => dummy_hash(cost).await?,
    };
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(plain, &hash)).await?.unwrap_or(false);
    Ok(ok && known)
}

async fn dummy_hash(cost: u32) -> anyhow::Result<String> {
    static DUMMY: tokio::sync::OnceCell<(u32, String)> = tokio::sync::OnceCell::const_new();
    let (c, h) = DUMMY
        .get_or_try_init(|| async move {
            let h =
                tokio::task::spawn_blocking(move || bcrypt::hash("kraliki-timing-equaliser", cost)).await??;
            Ok::<_, anyhow::Error>((cost, h))
        })
        .await?;
    if *c == cost {
        Ok(h.clone())
    } else {
        Ok(tokio::task::spawn_blocking(move || bcrypt::hash("kraliki-timing-equaliser", cost)).await??)
    }
}

/// Seconds until another attempt is allowed, if the account or the address is over its limit.
pub async fn throttled(
    pool: &PgPool,
    account: &str,
    address: &str,
    auth: &crate::config::AuthSettings,
) -> Result<Option<i64>, sqlx::Error> {
    let window = auth.failure_window_secs;
    let rows: Vec<(String, i64, Option<chrono::DateTime<Utc>>)> = sqlx::query_as(
        "SELECT scope, count(*), min(failed_at) FROM login_failures \
         WHERE ((scope = 'account' AND key = $1) OR (scope = 'address' AND key = $2)) \
           AND failed_at > now() - make_interval(secs => $3) GROUP BY scope",
    )
    .bind(account)
    .bind(address)
    .bind(window as f64)
    .fetch_all(pool)
    .await?;
    let mut wait: Option<i64> = None;
    for (scope, count, oldest) in rows {
        let limit =
            if scope == "account" { auth.max_failures_per_account } else { auth.max_failures_per_address };
        if count >= limit {
            let until = oldest
                .map(|t| (t + chrono::Duration::seconds(window) - Utc::now()).num_seconds())
                .unwrap_or(window);
            wait = Some(wait.unwrap_or(0).max(until.max(1)));
        }
    }
    Ok(wait)
}

pub async fn record_failure(pool: &PgPool, account: &str, address: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_failures (scope, key) VALUES ('account', $1), ('address', $2)")
        .bind(account)
        .bind(address)
        .execute(pool)
        .await?;
    Ok(())
}

/// A successful login clears the account's failures (not the address's).
pub async fn clear_account(pool: &PgPool, account: &str, window_secs: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE (scope = 'account' AND key = $1) OR failed_at < now() - make_interval(secs => $2)")
        .bind(account)
        .bind(window_secs as f64)
        .execute(pool)
        .await?;
    Ok(())
}
