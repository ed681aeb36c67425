//! Word lists the generator draws names from: people, applications, sites, guest
//! operating systems. Plain data, kept apart so the generator reads as logic.

use super::Vendor;

pub(super) const FIRST_NAMES: &[&str] = &[
    "Alice", "Bruno", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Karin", "Liam", "Maria", "Nadia", "Oscar", "Paula", "Quentin", "Rosa", "Samir", "Tanja",
    "Ugo", "Vera", "Walter", "Xenia", "Yusuf", "Zoe", "Anna", "Bernd", "Carla", "Dirk", "Elena",
    "Frank", "Gina", "Henrik", "Ivana", "Jan", "Katrin", "Lukas", "Mona", "Niklas",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Adams", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Keller", "Lambert", "Moreau", "Novak", "Olsen", "Petit", "Quinn", "Rossi", "Schmidt",
    "Tanaka", "Urban", "Vogel", "Weber", "Xu", "Young", "Zimmer", "Berg", "Clark", "Dietrich",
    "Evans", "Fontaine", "Gruber", "Hoffmann", "Ivanov", "Jacobs", "Klein", "Lopez", "Meyer",
    "Nilsen", "Ortega",
];

/// Application codes used in VM names (`prd-web-014`).
pub(super) const APPS: &[&str] = &[
    "web", "app", "db", "api", "etl", "mq", "cache", "lb", "mon", "ci", "git", "ldap", "dns",
    "sql", "ora", "k8s", "jump", "bkp", "log", "crm", "erp", "hr", "pay", "bi",
];

/// Department values of the `/managed/department/...` tags.
pub(super) const DEPARTMENTS: &[&str] =
    &["engineering", "finance", "hr", "it", "marketing", "sales"];

/// Sites: tag value, display name, city, country, street. Datacenters sit in one each.
pub(super) const SITES: &[(&str, &str, &str, &str, &str)] = &[
    ("paris", "Paris DC", "Paris", "France", "12 Rue de la Paix"),
    (
        "london",
        "London DC",
        "London",
        "United Kingdom",
        "1 Canada Square",
    ),
    (
        "frankfurt",
        "Frankfurt DC",
        "Frankfurt am Main",
        "Germany",
        "Hanauer Landstrasse 300",
    ),
    (
        "newyork",
        "New York DC",
        "New York",
        "USA",
        "75 Broad Street",
    ),
];

/// User groups of the CMDB (`sys_user_group`).
pub(super) const SUPPORT_GROUPS: &[(&str, &str)] = &[
    ("CloudForms Admins", "Operates CloudForms and its providers"),
    ("Linux Team", "Linux server support"),
    ("Windows Team", "Windows server support"),
    ("Database Team", "Database administration"),
    ("Service Desk", "First-level support"),
    ("Network Team", "Network and load balancers"),
];

/// A guest operating system as CloudForms reports it.
pub(super) struct GuestOs {
    /// `hardware.guest_os`
    pub guest_os: &'static str,
    /// `hardware.guest_os_full_name`; RHV leaves it empty.
    pub full_name: Option<&'static str>,
    /// `os_image_name`
    pub image_name: &'static str,
    /// `platform` and `operating_system.product_type`
    pub platform: &'static str,
    /// Relative weight when drawing.
    pub weight: u32,
}

const VMWARE_OS: &[GuestOs] = &[
    GuestOs {
        guest_os: "rhel7_64Guest",
        full_name: Some("Red Hat Enterprise Linux 7 (64-bit)"),
        image_name: "linux_redhat",
        platform: "linux",
        weight: 30,
    },
    GuestOs {
        guest_os: "rhel8_64Guest",
        full_name: Some("Red Hat Enterprise Linux 8 (64-bit)"),
        image_name: "linux_redhat",
        platform: "linux",
        weight: 25,
    },
    GuestOs {
        guest_os: "centos7_64Guest",
        full_name: Some("CentOS 7 (64-bit)"),
        image_name: "linux_centos",
        platform: "linux",
        weight: 8,
    },
    GuestOs {
        guest_os: "ubuntu64Guest",
        full_name: Some("Ubuntu Linux (64-bit)"),
        image_name: "linux_ubuntu",
        platform: "linux",
        weight: 6,
    },
    GuestOs {
        guest_os: "sles15_64Guest",
        full_name: Some("SUSE Linux Enterprise 15 (64-bit)"),
        image_name: "linux_suse",
        platform: "linux",
        weight: 4,
    },
    GuestOs {
        guest_os: "windows9Server64Guest",
        full_name: Some("Microsoft Windows Server 2016 or later (64-bit)"),
        image_name: "windows_generic",
        platform: "windows",
        weight: 15,
    },
    GuestOs {
        guest_os: "windows2019srv_64Guest",
        full_name: Some("Microsoft Windows Server 2019 (64-bit)"),
        image_name: "windows_generic",
        platform: "windows",
        weight: 10,
    },
    GuestOs {
        guest_os: "otherGuest64",
        full_name: Some("Other (64-bit)"),
        image_name: "unknown",
        platform: "unknown",
        weight: 2,
    },
];

const RHV_OS: &[GuestOs] = &[
    GuestOs {
        guest_os: "rhel_7x64",
        full_name: None,
        image_name: "linux_redhat",
        platform: "linux",
        weight: 40,
    },
    GuestOs {
        guest_os: "rhel_8x64",
        full_name: None,
        image_name: "linux_redhat",
        platform: "linux",
        weight: 35,
    },
    GuestOs {
        guest_os: "windows_2019x64",
        full_name: None,
        image_name: "windows_generic",
        platform: "windows",
        weight: 15,
    },
    GuestOs {
        guest_os: "other_linux",
        full_name: None,
        image_name: "linux_generic",
        platform: "linux",
        weight: 10,
    },
];

pub(super) fn guest_os_table(vendor: Vendor) -> &'static [GuestOs] {
    match vendor {
        Vendor::Vmware => VMWARE_OS,
        Vendor::Redhat => RHV_OS,
    }
}
