//! The letters to applicants, in Kazakh, Russian and English: the order number (P1 step 5), the
//! issue notice with the install link (step 11), the revocation notice. A letter is composed
//! once, when the change is recorded, and stored whole in the outbox.

use serde::{Deserialize, Serialize};

use crate::store::OutboxMessage;

/// A letter as the outbox keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Letter {
    pub to: String,
    pub lang: String,
    pub subject: String,
    pub text: String,
}

/// Which letter.
#[derive(Debug, Clone)]
pub enum Kind<'a> {
    /// The application is registered: its number, and where to bring the documents.
    OrderNumber { centre: &'a str, status_url: &'a str },
    /// The certificates are issued: where to take them.
    Issued {
        install_url: &'a str,
        serials: &'a [String],
    },
    /// Certificates are revoked.
    Revoked { serials: &'a [String], reason: &'a str },
    /// The pair expires in `days` days: reissue it in the cabinet.
    ExpiryReminder {
        days: i64,
        expires: &'a str,
        cabinet_url: &'a str,
    },
}

/// The language of a letter: the applicant's choice when it is one we write, Kazakh otherwise
/// (the state language).
pub fn language(lang: Option<&str>) -> &'static str {
    match lang.unwrap_or("") {
        "ru" => "ru",
        "en" => "en",
        _ => "kk",
    }
}

pub fn compose(to: &str, lang: &str, number: &str, kind: &Kind) -> Letter {
    let lang = language(Some(lang));
    let (subject, text) = match (lang, kind) {
        ("en", Kind::OrderNumber { centre, status_url }) => (
            format!("Application {number} registered"),
            format!(
                "Your application for registration certificates is registered under number {number}.\n\n\
                 Bring your identity document to the registration centre {centre}; the operator will check it \
                 and confirm your application.\n\nThe status of your application: {status_url}\n"
            ),
        ),
        ("ru", Kind::OrderNumber { centre, status_url }) => (
            format!("Заявка {number} зарегистрирована"),
            format!(
                "Ваша заявка на выдачу регистрационных свидетельств зарегистрирована под номером {number}.\n\n\
                 Обратитесь с документом, удостоверяющим личность, в центр регистрации {centre}; оператор \
                 проверит его и подтвердит заявку.\n\nСтатус заявки: {status_url}\n"
            ),
        ),
        (_, Kind::OrderNumber { centre, status_url }) => (
            format!("{number} өтінім тіркелді"),
            format!(
                "Тіркеу куәліктерін беруге арналған өтініміңіз {number} нөмірімен тіркелді.\n\n\
                 Жеке басыңызды куәландыратын құжатпен {centre} тіркеу орталығына келіңіз; оператор оны \
                 тексеріп, өтініміңізді растайды.\n\nӨтінім мәртебесі: {status_url}\n"
            ),
        ),
        ("en", Kind::Issued { install_url, serials }) => (
            format!("Certificates issued: application {number}"),
            format!(
                "Your registration certificates are issued (serial numbers {}).\n\nInstall them from: {install_url}\n",
                serials.join(", ")
            ),
        ),
        ("ru", Kind::Issued { install_url, serials }) => (
            format!("Регистрационные свидетельства выданы: заявка {number}"),
            format!(
                "Ваши регистрационные свидетельства выданы (серийные номера {}).\n\nУстановить: {install_url}\n",
                serials.join(", ")
            ),
        ),
        (_, Kind::Issued { install_url, serials }) => (
            format!("Тіркеу куәліктері берілді: {number} өтінім"),
            format!(
                "Тіркеу куәліктеріңіз берілді (сериялық нөмірлері {}).\n\nОрнату: {install_url}\n",
                serials.join(", ")
            ),
        ),
        ("en", Kind::Revoked { serials, reason }) => (
            format!("Certificates revoked: application {number}"),
            format!(
                "The registration certificates with serial numbers {} are revoked (reason: {reason}).\n",
                serials.join(", ")
            ),
        ),
        ("ru", Kind::Revoked { serials, reason }) => (
            format!("Регистрационные свидетельства отозваны: заявка {number}"),
            format!(
                "Регистрационные свидетельства с серийными номерами {} отозваны (причина: {reason}).\n",
                serials.join(", ")
            ),
        ),
        (_, Kind::Revoked { serials, reason }) => (
            format!("Тіркеу куәліктері кері қайтарылды: {number} өтінім"),
            format!(
                "Сериялық нөмірлері {} тіркеу куәліктері кері қайтарылды (себебі: {reason}).\n",
                serials.join(", ")
            ),
        ),
        (
            "en",
            Kind::ExpiryReminder {
                days,
                expires,
                cabinet_url,
            },
        ) => (
            format!("Your certificates expire in {days} days: application {number}"),
            format!(
                "The registration certificates issued under application {number} expire on {expires}, in {days} days.\n\n\
                 Reissue them in your personal cabinet, signed with your current key, before then: {cabinet_url}\n"
            ),
        ),
        (
            "ru",
            Kind::ExpiryReminder {
                days,
                expires,
                cabinet_url,
            },
        ) => (
            format!("Срок действия ваших свидетельств истекает через {days} дн.: заявка {number}"),
            format!(
                "Срок действия регистрационных свидетельств, выданных по заявке {number}, истекает {expires}, через {days} дн.\n\n\
                 Перевыпустите их до этого в личном кабинете, подписав запрос действующим ключом: {cabinet_url}\n"
            ),
        ),
        (
            _,
            Kind::ExpiryReminder {
                days,
                expires,
                cabinet_url,
            },
        ) => (
            format!("Куәліктеріңіздің мерзімі {days} күннен кейін аяқталады: {number} өтінім"),
            format!(
                "{number} өтінім бойынша берілген тіркеу куәліктерінің мерзімі {expires} күні, {days} күннен кейін аяқталады.\n\n\
                 Оған дейін оларды жеке кабинетте қолданыстағы кілтпен қол қойып қайта шығарыңыз: {cabinet_url}\n"
            ),
        ),
    };
    Letter {
        to: to.to_string(),
        lang: lang.to_string(),
        subject,
        text,
    }
}

/// The letter as an outbox message of the application.
pub fn message(number: &str, letter: &Letter) -> Result<OutboxMessage, super::RandomnessError> {
    Ok(OutboxMessage {
        channel: super::MAIL,
        message_id: super::message_id()?,
        application: number.to_string(),
        body: serde_json::to_string(letter).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_has_its_own_words() {
        let k = Kind::OrderNumber {
            centre: "Astana PSC 1",
            status_url: "http://x/",
        };
        let en = compose("a@b.kz", "en", "ABCD-EFGH-JKLM", &k);
        let ru = compose("a@b.kz", "ru", "ABCD-EFGH-JKLM", &k);
        let kk = compose("a@b.kz", "de", "ABCD-EFGH-JKLM", &k);
        assert!(en.text.contains("registered under number ABCD-EFGH-JKLM"));
        assert!(ru.text.contains("зарегистрирована под номером ABCD-EFGH-JKLM"));
        assert_eq!(kk.lang, "kk");
        assert!(kk.text.contains("нөмірімен тіркелді"));
    }

    #[test]
    fn the_expiry_reminder_names_the_days_the_date_and_the_cabinet_in_each_language() {
        let k = Kind::ExpiryReminder {
            days: 7,
            expires: "2027-12-01T10:00:00Z",
            cabinet_url: "http://x/cabinet/#reissue",
        };
        for lang in ["en", "ru", "kk"] {
            let l = compose("a@b.kz", lang, "ABCD-EFGH-JKLM", &k);
            assert_eq!(l.lang, lang);
            for part in [
                "7",
                "2027-12-01T10:00:00Z",
                "http://x/cabinet/#reissue",
                "ABCD-EFGH-JKLM",
            ] {
                assert!(l.text.contains(part), "{lang}: {part} in {}", l.text);
            }
            assert!(l.subject.contains('7'), "{}", l.subject);
        }
    }
}
