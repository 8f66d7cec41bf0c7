//! A deterministic bank of facts with *paraphrased* questions, for the recall-quality test
//! and the benchmark. Each fact is stated with one of several templates; its question is
//! worded differently (different verbs and nouns, never the statement reworded by
//! substitution), so a hit needs the meaning, not the string.

/// One fact of the bank and a question about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankFact {
    /// κ_coarse.
    pub subject: String,
    /// κ_fine.
    pub facet: String,
    /// The value.
    pub value: String,
    /// The statement stored.
    pub text: String,
    /// A paraphrased question whose answer is this fact.
    pub query: String,
}

const FIRST: &[&str] = &[
    "Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ingrid", "Jamal",
    "Keiko", "Lars", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Soren", "Tamar",
    "Ulla", "Viktor", "Wen", "Ximena", "Yusuf", "Zofia", "Amara", "Boris", "Celine", "Dario",
    "Esther", "Felix", "Gwen", "Hassan", "Ines", "Jonas",
];
const LAST: &[&str] = &[
    "Moreau",
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Rossi",
    "Novak",
    "Haddad",
    "Schmidt",
    "Alvarez",
    "Kowalski",
    "Nakamura",
    "Dubois",
    "Petrov",
    "Singh",
    "Larsen",
    "Costa",
    "Fischer",
    "Ibrahim",
    "Jensen",
    "Murphy",
    "Oliveira",
    "Yilmaz",
    "Bauer",
    "Chen",
    "Duarte",
    "Eriksen",
    "Ferrari",
    "Gallo",
    "Horvat",
    "Ivanova",
];
const CITIES: &[&str] = &[
    "Lyon", "Porto", "Gdansk", "Osaka", "Tampere", "Valencia", "Leipzig", "Bergen", "Cork", "Brno",
    "Turin", "Ghent", "Split", "Malmo", "Graz", "Bilbao", "Nantes", "Aarhus", "Riga", "Seville",
    "Krakow", "Utrecht",
];
const EMPLOYERS: &[&str] = &[
    "Acme Robotics",
    "Bluefin Analytics",
    "Cobalt Foods",
    "Delta Freight",
    "Evergreen Bank",
    "Fjord Energy",
    "Granite Insurance",
    "Helix Pharma",
    "Ion Telecom",
    "Juniper Books",
    "Kestrel Aviation",
    "Lumen Optics",
];
const PETS: &[&str] = &[
    "Biscuit", "Pepper", "Noodle", "Mochi", "Ziggy", "Pickles", "Waffles", "Juniper", "Tofu",
    "Ripley", "Nugget", "Clover", "Banjo", "Pretzel", "Maple", "Gizmo",
];
const FOODS: &[&str] = &[
    "mushroom risotto",
    "pad thai",
    "lentil soup",
    "grilled sardines",
    "pierogi",
    "ramen",
    "paella",
    "falafel",
    "goulash",
    "tacos al pastor",
    "moussaka",
    "bibimbap",
    "fish and chips",
    "pho",
];
const CARS: &[&str] = &[
    "red Volvo estate",
    "blue Toyota Prius",
    "silver Skoda Octavia",
    "green Renault Zoe",
    "black Ford Focus",
    "white Fiat Panda",
    "grey Tesla Model 3",
    "yellow Mini Cooper",
    "orange Kia Soul",
];
const HOBBIES: &[&str] = &[
    "rock climbing",
    "watercolour painting",
    "birdwatching",
    "chess",
    "sourdough baking",
    "sailing",
    "pottery",
    "trail running",
    "playing the cello",
    "woodworking",
    "astronomy",
    "salsa dancing",
];
const LANGUAGES: &[&str] = &[
    "Portuguese",
    "Finnish",
    "Polish",
    "Japanese",
    "Greek",
    "Turkish",
    "Dutch",
    "Swahili",
    "Hungarian",
    "Korean",
    "Czech",
    "Catalan",
];
const SYS_A: &[&str] = &[
    "orion", "falcon", "cedar", "quartz", "nimbus", "atlas", "ember", "harbor", "zephyr", "onyx",
];
const SYS_B: &[&str] = &[
    "build server",
    "payroll database",
    "staging cluster",
    "mail gateway",
    "backup vault",
];
const OS: &[&str] = &[
    "Debian 12",
    "Ubuntu 22.04",
    "Rocky Linux 9",
    "FreeBSD 14",
    "Alpine 3.19",
    "Windows Server 2022",
];

fn pick<'a>(list: &[&'a str], i: usize) -> &'a str {
    list[i % list.len()]
}

/// Which of several wordings to use for item `i`.
fn variant(i: usize, n: usize) -> usize {
    (i.wrapping_mul(2654435761) >> 7) % n
}

/// `n` facts (at most 80 people × 10 facets + 50 systems × 8 facets = 1,200; the bank
/// interleaves people and systems so any prefix mixes both).
pub fn bank(n: usize) -> Vec<BankFact> {
    let mut people = Vec::new();
    for p in 0..80 {
        let name = format!(
            "{} {}",
            FIRST[p % FIRST.len()],
            LAST[(p * 7 + p / FIRST.len()) % LAST.len()]
        );
        for f in 0..10 {
            people.push(person_fact(&name, p, f));
        }
    }
    let mut systems = Vec::new();
    for s in 0..50 {
        let name = format!(
            "{} {}",
            SYS_A[s % SYS_A.len()],
            SYS_B[s / SYS_A.len() % SYS_B.len()]
        );
        for f in 0..8 {
            systems.push(system_fact(&name, s, f));
        }
    }
    let mut out = Vec::with_capacity(n);
    let (mut pi, mut si) = (people.into_iter(), systems.into_iter());
    while out.len() < n {
        // Two people facts for every system fact.
        let batch = [pi.next(), pi.next(), si.next()];
        if batch.iter().all(Option::is_none) {
            break;
        }
        out.extend(batch.into_iter().flatten());
    }
    out.truncate(n);
    out
}

fn fact(
    subject: &str,
    facet: &str,
    value: String,
    texts: &[String],
    queries: &[String],
    i: usize,
) -> BankFact {
    BankFact {
        subject: subject.to_string(),
        facet: facet.to_string(),
        value,
        text: texts[variant(i, texts.len())].clone(),
        query: queries[variant(i + 3, queries.len())].clone(),
    }
}

fn person_fact(n: &str, p: usize, f: usize) -> BankFact {
    let i = p * 10 + f;
    let first = n.split(' ').next().unwrap();
    match f {
        0 => {
            let v = format!(
                "+44 20 {:04} {:04}",
                1000 + (p * 37) % 9000,
                2000 + (p * 91) % 7000
            );
            fact(
                n,
                "phone",
                v.clone(),
                &[
                    format!("{n}'s phone number is {v}."),
                    format!("You can ring {n} on {v}."),
                ],
                &[
                    format!("How do I call {n}?"),
                    format!("What number reaches {n} by telephone?"),
                    format!("If I need to ring {n}, which digits do I dial?"),
                ],
                i,
            )
        }
        1 => {
            let v = format!("{}.{}@example.org", first.to_lowercase(), p);
            fact(
                n,
                "email",
                v.clone(),
                &[
                    format!("{n}'s email address is {v}."),
                    format!("Mail for {n} goes to {v}."),
                ],
                &[
                    format!("Where do I send an e-mail to {n}?"),
                    format!("What is the electronic mail contact of {n}?"),
                    format!("Which inbox does {n} read?"),
                ],
                i,
            )
        }
        2 => {
            let v = pick(CITIES, p * 3 + 1).to_string();
            fact(
                n,
                "city",
                v.clone(),
                &[
                    format!("{n} lives in {v}."),
                    format!("{n}'s home is in {v}."),
                ],
                &[
                    format!("In which town does {n} reside?"),
                    format!("Where is {n} based these days?"),
                    format!("Which city does {n} call home?"),
                ],
                i,
            )
        }
        3 => {
            let v = pick(EMPLOYERS, p * 5 + 2).to_string();
            fact(
                n,
                "employer",
                v.clone(),
                &[
                    format!("{n} works at {v}."),
                    format!("{n} is employed by {v}."),
                ],
                &[
                    format!("Which company pays {n}'s salary?"),
                    format!("Who is {n}'s employer?"),
                    format!("Where does {n} have a job?"),
                ],
                i,
            )
        }
        4 => {
            let v = format!(
                "{}-{:02}-{:02}",
                1960 + p % 40,
                1 + p % 12,
                1 + (p * 7) % 28
            );
            fact(
                n,
                "birthday",
                v.clone(),
                &[
                    format!("{n} was born on {v}."),
                    format!("{n}'s birthday is {v}."),
                ],
                &[
                    format!("When should I wish {n} a happy birthday?"),
                    format!("What is {n}'s date of birth?"),
                    format!("On what day did {n} come into the world?"),
                ],
                i,
            )
        }
        5 => {
            let v = pick(PETS, p * 11 + 3).to_string();
            fact(
                n,
                "dog",
                v.clone(),
                &[
                    format!("{n} has a dog called {v}."),
                    format!("{n}'s dog is named {v}."),
                ],
                &[
                    format!("What is the name of {n}'s pet puppy?"),
                    format!("What does {n} call the family hound?"),
                    format!("Which name does {n}'s canine answer to?"),
                ],
                i,
            )
        }
        6 => {
            let v = pick(FOODS, p * 13 + 4).to_string();
            fact(
                n,
                "favourite food",
                v.clone(),
                &[
                    format!("{n}'s favourite food is {v}."),
                    format!("{n} loves eating {v} more than anything."),
                ],
                &[
                    format!("What dish would {n} most like for dinner?"),
                    format!("Which meal does {n} enjoy most?"),
                    format!("If I cook for {n}, what should I make?"),
                ],
                i,
            )
        }
        7 => {
            let v = pick(CARS, p * 17 + 5).to_string();
            fact(
                n,
                "car",
                v.clone(),
                &[format!("{n} drives a {v}."), format!("{n}'s car is a {v}.")],
                &[
                    format!("What vehicle does {n} own?"),
                    format!("Which automobile is {n}'s?"),
                    format!("What does {n} use to get around by road?"),
                ],
                i,
            )
        }
        8 => {
            let v = pick(HOBBIES, p * 19 + 6).to_string();
            fact(
                n,
                "hobby",
                v.clone(),
                &[
                    format!("In free time {n} enjoys {v}."),
                    format!("{n}'s hobby is {v}."),
                ],
                &[
                    format!("What does {n} do for fun?"),
                    format!("How does {n} spend weekends?"),
                    format!("What pastime is {n} passionate about?"),
                ],
                i,
            )
        }
        _ => {
            let v = pick(LANGUAGES, p * 23 + 7).to_string();
            fact(
                n,
                "native language",
                v.clone(),
                &[
                    format!("{n}'s native language is {v}."),
                    format!("{n} grew up speaking {v}."),
                ],
                &[
                    format!("What is {n}'s mother tongue?"),
                    format!("Which language did {n} learn as a child?"),
                    format!("In what language was {n} raised?"),
                ],
                i,
            )
        }
    }
}

fn system_fact(n: &str, s: usize, f: usize) -> BankFact {
    let i = s * 8 + f;
    match f {
        0 => {
            let v = format!("10.{}.{}.{}", s % 250, (s * 7) % 250, 10 + s % 200);
            fact(
                n,
                "ip address",
                v.clone(),
                &[
                    format!("The {n} has IP address {v}."),
                    format!("The {n} is reachable at {v}."),
                ],
                &[
                    format!("Which network address should I connect to for the {n}?"),
                    format!("What IP does the {n} listen on?"),
                    format!("How do I reach the {n} over the network?"),
                ],
                i,
            )
        }
        1 => {
            let v = format!("{} {}", pick(FIRST, s * 5 + 1), pick(LAST, s * 3 + 2));
            fact(
                n,
                "owner",
                v.clone(),
                &[
                    format!("The {n} is owned by {v}."),
                    format!("{v} is responsible for the {n}."),
                ],
                &[
                    format!("Who maintains the {n}?"),
                    format!("Whom do I ask about problems with the {n}?"),
                    format!("Which person is in charge of the {n}?"),
                ],
                i,
            )
        }
        2 => {
            let v = format!("rack {} in {}", 1 + s % 40, pick(CITIES, s + 5));
            fact(
                n,
                "location",
                v.clone(),
                &[
                    format!("The {n} sits in {v}."),
                    format!("The {n} is hosted at {v}."),
                ],
                &[
                    format!("Where is the {n} physically installed?"),
                    format!("In which datacenter can I find the {n}?"),
                    format!("Where does the {n} hardware live?"),
                ],
                i,
            )
        }
        3 => {
            let v = pick(OS, s * 7 + 3).to_string();
            fact(
                n,
                "operating system",
                v.clone(),
                &[
                    format!("The {n} runs {v}."),
                    format!("The {n}'s operating system is {v}."),
                ],
                &[
                    format!("Which OS is installed on the {n}?"),
                    format!("What platform does the {n} use?"),
                    format!("What system software powers the {n}?"),
                ],
                i,
            )
        }
        4 => {
            let v = format!("{:02}:{:02} UTC", (s * 5) % 24, (s * 15) % 60);
            fact(
                n,
                "backup time",
                v.clone(),
                &[
                    format!("The {n} is backed up daily at {v}."),
                    format!("Nightly backup of the {n} runs at {v}."),
                ],
                &[
                    format!("At what hour is the {n} snapshotted?"),
                    format!("When does the {n} get its daily copy saved?"),
                    format!("What time do the {n}'s backups happen?"),
                ],
                i,
            )
        }
        5 => {
            let v = format!("{} GB", 64 << (s % 5));
            fact(
                n,
                "memory",
                v.clone(),
                &[
                    format!("The {n} has {v} of RAM."),
                    format!("The {n} is fitted with {v} of memory."),
                ],
                &[
                    format!("How much RAM is in the {n}?"),
                    format!("What is the memory capacity of the {n}?"),
                    format!("How many gigabytes of working memory does the {n} have?"),
                ],
                i,
            )
        }
        6 => {
            let v = format!("https://{}.internal.example/{}", n.replace(' ', "-"), s);
            fact(
                n,
                "dashboard",
                v.clone(),
                &[
                    format!("The dashboard for the {n} is at {v}."),
                    format!("Monitoring of the {n} lives at {v}."),
                ],
                &[
                    format!("Which web page shows the {n}'s metrics?"),
                    format!("Where can I watch graphs for the {n}?"),
                    format!("What URL do I open to monitor the {n}?"),
                ],
                i,
            )
        }
        _ => {
            let v = format!("INC-{}", 4000 + s * 13);
            fact(
                n,
                "open ticket",
                v.clone(),
                &[
                    format!("The open incident for the {n} is {v}."),
                    format!("The {n} currently has ticket {v} open."),
                ],
                &[
                    format!("Which incident is still unresolved on the {n}?"),
                    format!("What issue number tracks the {n}'s current outage?"),
                    format!("Is there a support case pending for the {n}?"),
                ],
                i,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn bank_is_distinct_and_queries_differ_from_statements() {
        let b = bank(1000);
        assert_eq!(b.len(), 1000);
        let kappas: HashSet<_> = b
            .iter()
            .map(|f| (f.subject.clone(), f.facet.clone()))
            .collect();
        assert_eq!(kappas.len(), 1000, "every fact has its own κ");
        assert!(b
            .iter()
            .all(|f| f.query != f.text && !f.query.contains(&f.value)));
        assert!(
            b.iter().any(|f| f.subject.contains("server")) && b.iter().any(|f| f.facet == "dog")
        );
    }
}
