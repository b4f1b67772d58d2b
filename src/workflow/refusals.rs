//! Refusal messages in Kazakh, Russian and English. The code is the contract; the sentence is
//! for the person. An application keeps its refusal's English detail (which CMS check failed,
//! which field differed); a caller who asks for English gets that detail, one who asks for
//! Kazakh or Russian gets the sentence for the code in their language.

/// The refusal codes of the processes, each with its sentence in kk, ru, en.
pub const REFUSALS: &[(&str, [&str; 3])] = &[
    (
        "registry_not_found",
        [
            "Мемлекеттік деректер қорында өтініш берушінің деректері табылмады.",
            "Данные заявителя не найдены в государственной базе данных.",
            "The applicant's data was not found in the state database.",
        ],
    ),
    (
        "registry_mismatch",
        [
            "Көрсетілген тегі, аты немесе әкесінің аты мемлекеттік деректер қорындағымен сәйкес келмейді.",
            "Указанные фамилия, имя или отчество не совпадают с данными государственной базы данных.",
            "The surname, name or patronymic given differ from the state database's.",
        ],
    ),
    (
        "identity_not_confirmed",
        [
            "Оператор өтініш берушінің жеке басын немесе құжаттарын растамады.",
            "Оператор не подтвердил личность заявителя или его документы.",
            "The operator did not confirm the applicant's identity or documents.",
        ],
    ),
    (
        "operator_signature_invalid",
        [
            "Оператордың электрондық цифрлық қолтаңбасы жарамсыз.",
            "Электронная цифровая подпись оператора недействительна.",
            "The operator's electronic signature is not valid.",
        ],
    ),
    (
        "operator_not_authorized",
        [
            "Операторда бұл өтінімді растауға өкілеттік жоқ.",
            "У оператора нет полномочий подтвердить эту заявку.",
            "The operator is not authorised to confirm this application.",
        ],
    ),
    (
        "applicant_signature_invalid",
        [
            "Өтініш берушінің электрондық цифрлық қолтаңбасы жарамсыз немесе оған тиесілі емес.",
            "Электронная цифровая подпись заявителя недействительна или принадлежит не ему.",
            "The applicant's electronic signature is not valid or not theirs.",
        ],
    ),
    (
        "key_rejected",
        [
            "Сұраудағы кілт талаптарға сай емес.",
            "Ключ в запросе не соответствует требованиям.",
            "A key in the request does not meet the requirements.",
        ],
    ),
    (
        "request_invalid",
        [
            "Өтінім дұрыс толтырылмаған.",
            "Заявка заполнена неверно.",
            "The application is not filled in correctly.",
        ],
    ),
];

/// The message for a refusal with `code` in `lang`; `detail` (English, as recorded) when the
/// caller asked for English or said nothing, or when the code has no sentence.
pub fn message(code: &str, detail: &str, lang: Option<&str>) -> String {
    let idx = match lang {
        Some("kk") => 0,
        Some("ru") => 1,
        _ => return detail.to_string(),
    };
    REFUSALS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, m)| m[idx].to_string())
        .unwrap_or_else(|| detail.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::regulation::Condition;

    #[test]
    fn every_condition_has_its_sentences() {
        for c in [
            Condition::ApplicantDataExists,
            Condition::IdentityConfirmed,
            Condition::OperatorSignatureValid,
            Condition::ApplicantSignatureValid,
            Condition::RequestValid,
        ] {
            assert!(REFUSALS.iter().any(|(code, _)| *code == c.refusal_code()), "{c:?}");
        }
        assert!(message("registry_mismatch", "x", Some("ru")).contains("не совпадают"));
        assert_eq!(message("registry_mismatch", "detail", Some("en")), "detail");
        assert_eq!(message("registry_mismatch", "detail", None), "detail");
    }
}
