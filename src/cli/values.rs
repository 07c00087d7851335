//! How the core's enums are spelled on the command line. The types belong to the core (`cert`,
//! `acme::jws`, `acme::policy`) and know nothing of clap; the face gives them their names and
//! help here.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::acme::jws::AccountKeyType;
use crate::acme::policy::RateLimits;
use crate::cert::KeyType;
use crate::output::ColorChoice;

/// `impl ValueEnum` for a core enum: each variant with its command-line name and help.
macro_rules! value_enum {
    ($ty:ty { $($variant:path => $name:literal, $help:literal;)+ }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($variant => PossibleValue::new($name).help($help),)+
                })
            }
        }
    };
}

value_enum!(KeyType {
    KeyType::Ec256 => "ec256", "ECDSA P-256";
    KeyType::Ec384 => "ec384", "ECDSA P-384";
    KeyType::Rsa2048 => "rsa2048", "RSA 2048";
    KeyType::Rsa3072 => "rsa3072", "RSA 3072";
    KeyType::Rsa4096 => "rsa4096", "RSA 4096";
});

value_enum!(AccountKeyType {
    AccountKeyType::Es256 => "es256", "ECDSA P-256 with SHA-256";
    AccountKeyType::Es384 => "es384", "ECDSA P-384 with SHA-384";
    AccountKeyType::Rs256 => "rs256", "RSA 2048 PKCS#1 v1.5 with SHA-256";
});

value_enum!(RateLimits {
    RateLimits::Auto => "auto",
        "The published limits of the CA given by preset or its URL; none for any other CA";
    RateLimits::Letsencrypt => "letsencrypt", "Let's Encrypt's published per-IP limits, whatever the CA";
    RateLimits::None => "none",
        "No budget: only what the CA answers (429/503 and Retry-After) slows requests down";
});

value_enum!(ColorChoice {
    ColorChoice::Auto => "auto",
        "Colour and the live display on a terminal, unless NO_COLOR is set or TERM=dumb";
    ColorChoice::Always => "always", "Colour even into a file or a pipe";
    ColorChoice::Never => "never", "No colour and no live display";
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_name_that_parses_back() {
        for v in KeyType::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(KeyType::from_str(&name, false).unwrap(), *v);
        }
        for v in AccountKeyType::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(AccountKeyType::from_str(&name, false).unwrap(), *v);
        }
        for v in RateLimits::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(RateLimits::from_str(&name, false).unwrap(), *v);
        }
    }
}
