//! Problem messages in English, Spanish and Czech, chosen by `Accept-Language` (English when
//! nothing acceptable is asked for). A table in code: three languages and a few dozen stable
//! codes do not need a translation framework, and a missing entry fails the test that walks
//! every code.

use crate::error::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
    Cs,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Cs => "cs",
        }
    }

    /// The best supported language of an `Accept-Language` header (RFC 9110 quality values).
    pub fn negotiate(header: Option<&str>) -> Lang {
        let Some(header) = header else { return Lang::En };
        let mut best: Option<(f32, usize, Lang)> = None;
        for (index, item) in header.split(',').enumerate() {
            let mut parts = item.trim().split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = range.split('-').next().unwrap_or("");
            let lang = match primary {
                "en" => Lang::En,
                "es" => Lang::Es,
                "cs" => Lang::Cs,
                _ => continue,
            };
            if q <= 0.0 {
                continue;
            }
            // Higher quality wins; on a tie, the earlier entry.
            if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && index < bi)) {
                best = Some((q, index, lang));
            }
        }
        best.map(|(_, _, l)| l).unwrap_or(Lang::En)
    }
}

pub fn title(code: Code, lang: Lang) -> &'static str {
    code.title_in(lang)
}

/// A field problem's message by its code; `None` keeps the original (English) message.
pub fn field_message(code: &str, lang: Lang) -> Option<&'static str> {
    let (es, cs) = match code {
        "required" => ("es obligatorio", "je povinné"),
        "too_long" => ("es demasiado largo", "je příliš dlouhé"),
        "too_short" => ("es demasiado corto", "je příliš krátké"),
        "invalid_characters" => ("contiene caracteres no permitidos", "obsahuje nepovolené znaky"),
        "invalid_domain" => {
            ("debe ser un nombre de dominio como example.com", "musí být doménové jméno, např. example.com")
        }
        "invalid_email" => (
            "debe ser una dirección de correo como nombre@example.com",
            "musí být e-mailová adresa, např. jmeno@example.com",
        ),
        "invalid_url" => ("debe empezar por http:// o https://", "musí začínat http:// nebo https://"),
        "invalid_role" => ("no es un rol conocido", "není známá role"),
        "unknown_field" => ("no es un campo conocido", "není známé pole"),
        "invalid_type" => ("tiene un tipo incorrecto", "má nesprávný typ"),
        "out_of_range" => ("está fuera del rango permitido", "je mimo povolený rozsah"),
        "invalid" => ("no es válido", "je neplatné"),
        _ => return None,
    };
    match lang {
        Lang::En => None,
        Lang::Es => Some(es),
        Lang::Cs => Some(cs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_quality_and_falls_back_to_english() {
        assert_eq!(Lang::negotiate(None), Lang::En);
        assert_eq!(Lang::negotiate(Some("cs-CZ,cs;q=0.9,en;q=0.8")), Lang::Cs);
        assert_eq!(Lang::negotiate(Some("de-DE, es;q=0.5, en;q=0.4")), Lang::Es);
        assert_eq!(Lang::negotiate(Some("en;q=0.2, es;q=0.9")), Lang::Es);
        assert_eq!(Lang::negotiate(Some("fr, de")), Lang::En);
        assert_eq!(Lang::negotiate(Some("cs;q=0, es")), Lang::Es);
        assert_eq!(Lang::negotiate(Some("*")), Lang::En);
    }

    #[test]
    fn every_code_has_a_title_in_every_language() {
        for &code in crate::error::Code::ALL {
            for lang in [Lang::En, Lang::Es, Lang::Cs] {
                assert!(!title(code, lang).is_empty());
            }
            assert_ne!(title(code, Lang::Es), title(code, Lang::En), "{code:?} untranslated");
            assert_ne!(title(code, Lang::Cs), title(code, Lang::En), "{code:?} untranslated");
        }
    }
}
