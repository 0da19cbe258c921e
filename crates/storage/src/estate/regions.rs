//! AWS region codes and the names people use for them: one table for both directions (the
//! resource text says "Oregon", a query's "in Oregon" means `us-west-2`).

/// `(code, name shown in resource texts, lowercase names a query may use)`.
const REGIONS: &[(&str, &str, &[&str])] = &[
    ("us-east-1", "N. Virginia", &["northern virginia", "virginia"]),
    ("us-east-2", "Ohio", &["ohio"]),
    ("us-west-1", "N. California", &["northern california", "california"]),
    ("us-west-2", "Oregon", &["oregon"]),
    ("eu-west-1", "Ireland", &["ireland", "dublin"]),
    ("eu-west-2", "London", &["london"]),
    ("eu-west-3", "Paris", &["paris"]),
    ("eu-central-1", "Frankfurt", &["frankfurt"]),
    ("eu-central-2", "Zurich", &["zurich"]),
    ("eu-north-1", "Stockholm", &["stockholm"]),
    ("eu-south-1", "Milan", &["milan"]),
    ("eu-south-2", "Spain", &["spain"]),
    ("ap-northeast-1", "Tokyo", &["tokyo"]),
    ("ap-northeast-2", "Seoul", &["seoul"]),
    ("ap-northeast-3", "Osaka", &["osaka"]),
    ("ap-southeast-1", "Singapore", &["singapore"]),
    ("ap-southeast-2", "Sydney", &["sydney"]),
    ("ap-southeast-3", "Jakarta", &["jakarta"]),
    ("ap-south-1", "Mumbai", &["mumbai"]),
    ("ap-east-1", "Hong Kong", &["hong kong"]),
    ("sa-east-1", "Sao Paulo", &["sao paulo"]),
    ("ca-central-1", "Canada", &["canada", "montreal"]),
    ("me-south-1", "Bahrain", &["bahrain"]),
    ("af-south-1", "Cape Town", &["cape town"]),
];

/// The name people use for a region code ("Oregon" for `us-west-2`).
pub(crate) fn display_name(code: &str) -> Option<&'static str> {
    REGIONS.iter().find(|(c, _, _)| *c == code).map(|(_, name, _)| *name)
}

/// The region a lowercase name means (`us-west-2` for "oregon").
pub(crate) fn code_of(name: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|(_, _, names)| names.contains(&name))
        .map(|(code, _, _)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_go_both_ways() {
        assert_eq!(display_name("us-west-2"), Some("Oregon"));
        assert_eq!(code_of("oregon"), Some("us-west-2"));
        assert_eq!(code_of("northern virginia"), Some("us-east-1"));
        assert_eq!(display_name("xx-nowhere-9"), None);
        for (code, name, names) in REGIONS {
            assert_eq!(
                code_of(&name.to_lowercase().replace("n. ", "northern ")),
                Some(*code),
                "{name}"
            );
            assert!(names.iter().all(|n| n.chars().all(|c| !c.is_uppercase())), "{code}");
        }
    }
}
