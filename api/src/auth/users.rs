//! Creating users: one e-mail address per user across the platform, the password hash in the
//! credential store, and the `UserRegistered` event. Used by sign-up, company admins, the CLI.

use std::collections::BTreeSet;

use chrono::Utc;
use kraliki_commands::{CommandContext, DispatchError, Dispatcher, Outcome};
use kraliki_domain::user::{User, UserCommand};
use kraliki_domain::values::{Email, Password, PersonName, Role};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user with this e-mail address already exists")]
    EmailTaken,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub struct NewUser {
    pub company_id: Uuid,
    pub email: Email,
    pub password: Password,
    pub full_name: PersonName,
    pub roles: BTreeSet<Role>,
}

/// Whether an e-mail address is taken by a user that exists.
pub async fn email_taken(pool: &PgPool, email: &Email) -> Result<bool, sqlx::Error> {
    let owner: Option<Uuid> = sqlx::query_scalar("SELECT user_id FROM user_emails WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(pool)
        .await?;
    match owner {
        None => Ok(false),
        Some(user) => user_exists(pool, user).await,
    }
}

async fn user_exists(pool: &PgPool, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = 'User' AND aggregate_id = $1)",
    )
    .bind(user.to_string())
    .fetch_one(pool)
    .await
}

pub async fn create(
    pool: &PgPool,
    dispatcher: &Dispatcher,
    bcrypt_cost: u32,
    new: NewUser,
    ctx: &CommandContext,
) -> Result<(Uuid, Outcome), CreateUserError> {
    let user_id = Uuid::now_v7();
    let email = new.email.as_str().to_owned();
    // Reserve the address. A reservation whose user never appeared (a crash between here and
    // the append) is taken over.
    let reserved: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO user_emails (email, user_id, company_id) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING RETURNING user_id",
    )
    .bind(&email)
    .bind(user_id)
    .bind(new.company_id)
    .fetch_optional(pool)
    .await
    .map_err(anyhow::Error::from)?;
    if reserved.is_none() {
        let owner: Uuid = sqlx::query_scalar("SELECT user_id FROM user_emails WHERE email = $1")
            .bind(&email)
            .fetch_one(pool)
            .await
            .map_err(anyhow::Error::from)?;
        if user_exists(pool, owner).await.map_err(anyhow::Error::from)? {
            return Err(CreateUserError::EmailTaken);
        }
        let taken = sqlx::query(
            "UPDATE user_emails SET user_id = $2, company_id = $3 WHERE email = $1 AND user_id = $4",
        )
        .bind(&email)
        .bind(user_id)
        .bind(new.company_id)
        .bind(owner)
        .execute(pool)
        .await
        .map_err(anyhow::Error::from)?;
        if taken.rows_affected() != 1 {
            return Err(CreateUserError::EmailTaken);
        }
    }
    let result = async {
        let hash = super::passwords::hash(&new.password, bcrypt_cost).await?;
        sqlx::query("INSERT INTO user_credentials (user_id, password_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(hash)
            .execute(pool)
            .await?;
        let command = UserCommand::RegisterUser {
            company_id: new.company_id.to_string(),
            email: new.email,
            full_name: new.full_name,
            roles: new.roles,
            at: Utc::now(),
        };
        dispatcher.execute::<User>(&user_id.to_string(), command, ctx).await.map_err(|e| match e {
            DispatchError::Store(e) => e,
            other => anyhow::anyhow!("{other}"),
        })
    }
    .await;
    match result {
        Ok(outcome) => Ok((user_id, outcome)),
        Err(e) => {
            let _ =
                sqlx::query("DELETE FROM user_emails WHERE user_id = $1").bind(user_id).execute(pool).await;
            let _ = sqlx::query("DELETE FROM user_credentials WHERE user_id = $1")
                .bind(user_id)
                .execute(pool)
                .await;
            Err(CreateUserError::Other(e))
        }
    }
}

/// Creates a company (the platform operator's action, or the CLI's).
pub async fn create_company(
    dispatcher: &Dispatcher,
    name: &str,
    domain: &str,
    actor: &str,
) -> anyhow::Result<Uuid> {
    use kraliki_domain::company::{Company, CompanyCommand, CompanyProfile};
    use kraliki_domain::values::{CompanyName, DomainName};
    let id = Uuid::now_v7();
    let name = CompanyName::parse(name)?;
    let domain = DomainName::parse(domain)?;
    let profile = CompanyProfile {
        domain: domain.as_str().to_owned(),
        size: None,
        industry: None,
        description: None,
        website: None,
    };
    let ctx = CommandContext::new(id.to_string(), actor);
    dispatcher
        .execute::<Company>(
            &id.to_string(),
            CompanyCommand::CreateCompany { name, profile, at: Utc::now() },
            &ctx,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(id)
}
