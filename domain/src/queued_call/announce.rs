//! What a waiting caller hears every announcement interval: their position and the estimated
//! wait, in their language (English, Spanish or Czech; anything else is English).

/// The language tag Twilio's `<Say>` and Telnyx's `speak` use for `language`, and the text.
pub fn position_announcement(
    language: Option<&str>,
    position: u32,
    wait_seconds: Option<u64>,
) -> (&'static str, String) {
    let minutes = wait_seconds.map(|s| s.div_ceil(60));
    match language.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
        Some(l) if l.starts_with("es") => {
            let wait = match minutes {
                Some(0 | 1) => " El tiempo de espera estimado es de menos de un minuto.".to_owned(),
                Some(m) => format!(" El tiempo de espera estimado es de unos {m} minutos."),
                None => " Un agente le atenderá en breve.".to_owned(),
            };
            ("es-ES", format!("Gracias por esperar. Usted es el número {position} en la cola.{wait}"))
        }
        Some(l) if l.starts_with("cs") => {
            let wait = match minutes {
                Some(0 | 1) => " Odhadovaná doba čekání je méně než minuta.".to_owned(),
                Some(m @ 2..=4) => format!(" Odhadovaná doba čekání je asi {m} minuty."),
                Some(m) => format!(" Odhadovaná doba čekání je asi {m} minut."),
                None => " Operátor se vám bude brzy věnovat.".to_owned(),
            };
            ("cs-CZ", format!("Děkujeme za strpení. Jste {position}. v pořadí.{wait}"))
        }
        _ => {
            let wait = match minutes {
                Some(0 | 1) => " The estimated wait is less than a minute.".to_owned(),
                Some(m) => format!(" The estimated wait is about {m} minutes."),
                None => " An agent will be with you shortly.".to_owned(),
            };
            ("en-US", format!("Thank you for waiting. You are number {position} in the queue.{wait}"))
        }
    }
}

/// The estimated wait of the caller at `position`: `position` × the mean time between the
/// queue's recent assignments (a queue that served n callers over t seconds serves one every
/// t ÷ n); none without at least two recent assignments.
pub fn estimated_wait_seconds(position: u32, recent_assignments: u32, over_seconds: f64) -> Option<u64> {
    if recent_assignments < 2 || over_seconds <= 0.0 {
        return None;
    }
    let interval = over_seconds / f64::from(recent_assignments - 1);
    Some((f64::from(position) * interval).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_is_in_the_callers_language_with_czech_plurals() {
        assert_eq!(
            position_announcement(Some("en"), 3, Some(150)),
            ("en-US", "Thank you for waiting. You are number 3 in the queue. The estimated wait is about 3 minutes.".into())
        );
        assert_eq!(
            position_announcement(Some("es"), 1, Some(40)).1,
            "Gracias por esperar. Usted es el número 1 en la cola. El tiempo de espera estimado es de menos de un minuto."
        );
        let cs = |s| position_announcement(Some("cs"), 2, s).1;
        assert!(cs(Some(170)).ends_with("asi 3 minuty."), "{}", cs(Some(170)));
        assert!(cs(Some(400)).ends_with("asi 7 minut."));
        assert!(cs(None).ends_with("brzy věnovat."));
        assert_eq!(position_announcement(Some("de"), 1, None).0, "en-US", "anything else is English");
        assert_eq!(position_announcement(None, 1, None).0, "en-US");
    }

    #[test]
    fn the_estimated_wait_is_the_position_times_the_recent_service_interval() {
        // 5 assignments over 120 s: one every 30 s; the third caller waits about 90 s.
        assert_eq!(estimated_wait_seconds(3, 5, 120.0), Some(90));
        assert_eq!(estimated_wait_seconds(3, 1, 120.0), None, "one assignment says nothing of a rate");
    }
}
