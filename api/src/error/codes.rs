//! Every code the API answers with: one row each — its status and its title in English, Spanish
//! and Czech. Codes are stable; clients act on them. Adding a code is adding a row.

use axum::http::StatusCode;
use serde::Serialize;

use crate::i18n::Lang;

macro_rules! codes {
    ($($code:ident = $status:ident, $en:literal, $es:literal, $cs:literal;)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $($code,)+
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$code,)+];

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$code => StatusCode::$status,)+
                }
            }

            /// The English title.
            pub fn title(self) -> &'static str {
                self.title_in(Lang::En)
            }

            pub fn title_in(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $(
                        (Code::$code, Lang::En) => $en,
                        (Code::$code, Lang::Es) => $es,
                        (Code::$code, Lang::Cs) => $cs,
                    )+
                }
            }
        }
    };
}

codes! {
    MalformedJson = BAD_REQUEST, "The request body is not valid JSON",
        "El cuerpo de la solicitud no es JSON válido", "Tělo požadavku není platný JSON";
    InvalidBody = UNPROCESSABLE_ENTITY, "The request body does not have the expected shape",
        "El cuerpo de la solicitud no tiene la forma esperada", "Tělo požadavku nemá očekávaný tvar";
    ValidationFailed = UNPROCESSABLE_ENTITY, "Some fields are invalid",
        "Algunos campos no son válidos", "Některá pole jsou neplatná";
    UnsupportedMediaType = UNSUPPORTED_MEDIA_TYPE, "The request body must be application/json",
        "El cuerpo de la solicitud debe ser application/json", "Tělo požadavku musí být application/json";
    PayloadTooLarge = PAYLOAD_TOO_LARGE, "The request body is too large",
        "El cuerpo de la solicitud es demasiado grande", "Tělo požadavku je příliš velké";
    InvalidQuery = BAD_REQUEST, "The query string is invalid",
        "La cadena de consulta no es válida", "Parametry dotazu jsou neplatné";
    NotFound = NOT_FOUND, "Not found", "No encontrado", "Nenalezeno";
    MethodNotAllowed = METHOD_NOT_ALLOWED, "Method not allowed", "Método no permitido", "Metoda není povolena";
    Conflict = CONFLICT, "The resource was changed concurrently",
        "El recurso fue modificado al mismo tiempo", "Zdroj byl současně změněn";
    AlreadyExists = CONFLICT, "The resource already exists", "El recurso ya existe", "Zdroj už existuje";
    InvalidState = CONFLICT, "The resource is not in a state that allows this",
        "El recurso no está en un estado que lo permita", "Zdroj není ve stavu, který by to umožňoval";
    CampaignNotReady = CONFLICT, "The campaign cannot start yet",
        "La campaña todavía no puede empezar", "Kampaň zatím nemůže začít";
    ProviderNotConfigured = CONFLICT, "The campaign's voice provider has no API key configured",
        "El proveedor de voz de la campaña no tiene clave de API configurada",
        "Hlasový poskytovatel kampaně nemá nastavený API klíč";
    LockedWhileActive = CONFLICT, "These settings change only while the campaign is not dialing",
        "Estos ajustes solo cambian mientras la campaña no está marcando",
        "Tato nastavení lze měnit jen když kampaň nevytáčí";
    FlowNotPublishable = UNPROCESSABLE_ENTITY, "The IVR flow has errors that block publishing",
        "El flujo IVR tiene errores que impiden publicarlo", "IVR tok obsahuje chyby, které brání zveřejnění";
    IdempotencyKeyReused = UNPROCESSABLE_ENTITY, "The idempotency key was used with a different request",
        "La clave de idempotencia se usó con otra solicitud", "Klíč idempotence byl použit s jiným požadavkem";
    InvalidIdempotencyKey = BAD_REQUEST, "The Idempotency-Key header is invalid",
        "El encabezado Idempotency-Key no es válido", "Hlavička Idempotency-Key je neplatná";
    PreconditionFailed = PRECONDITION_FAILED, "The resource changed since you read it",
        "El recurso cambió desde que lo leyó", "Zdroj se od vašeho čtení změnil";
    UnknownPosition = UNPROCESSABLE_ENTITY, "The requested log position does not exist",
        "La posición solicitada del registro no existe", "Požadovaná pozice v logu neexistuje";
    ProjectionLagging = SERVICE_UNAVAILABLE, "The read model has not caught up yet",
        "El modelo de lectura aún no está al día", "Čtecí model ještě není aktuální";
    RequestTimeout = REQUEST_TIMEOUT, "The request took too long",
        "La solicitud tardó demasiado", "Požadavek trval příliš dlouho";
    Unauthorized = UNAUTHORIZED, "Authentication required", "Se requiere autenticación", "Je vyžadováno přihlášení";
    InvalidCredentials = UNAUTHORIZED, "Invalid email or password",
        "Correo electrónico o contraseña incorrectos", "Neplatný e-mail nebo heslo";
    EmailTaken = CONFLICT, "A user with this e-mail address already exists",
        "Ya existe un usuario con esta dirección de correo", "Uživatel s touto e-mailovou adresou už existuje";
    RegistrationClosed = FORBIDDEN, "Self-service registration is closed",
        "El registro público está cerrado", "Veřejná registrace je uzavřena";
    Forbidden = FORBIDDEN, "Not allowed", "No permitido", "Nepovoleno";
    CompanyInactive = FORBIDDEN, "The company is deactivated",
        "La empresa está desactivada", "Společnost je deaktivována";
    TooManyRequests = TOO_MANY_REQUESTS, "Too many requests", "Demasiadas solicitudes", "Příliš mnoho požadavků";
    ServiceUnavailable = SERVICE_UNAVAILABLE, "Service unavailable", "Servicio no disponible", "Služba není dostupná";
    DatabaseUnavailable = SERVICE_UNAVAILABLE, "The database is unavailable; try again shortly",
        "La base de datos no está disponible; inténtelo de nuevo en breve",
        "Databáze není dostupná; zkuste to za chvíli znovu";
    Internal = INTERNAL_SERVER_ERROR, "Internal server error", "Error interno del servidor", "Interní chyba serveru";
}
