//! Collection query parameters (`attributes`, `expand`, `offset`, `limit`,
//! `filter[]`, `by_tag`, `sort_*`, `hide`) and the paging arithmetic of
//! manageiq-api's `Api::LinksBuilder`, known bug included.

use super::error::MiqError;
use url::form_urlencoded;

/// `api.max_results_per_page`: larger limits are silently capped.
pub const MAX_RESULTS_PER_PAGE: u64 = 1000;

#[derive(Debug, Default, Clone)]
pub struct CollectionQuery {
    pub attributes: Vec<String>,
    pub expand: Vec<String>,
    pub filters: Vec<String>,
    pub by_tag: Option<String>,
    pub sort_by: Vec<String>,
    pub sort_order: Vec<String>,
    pub sort_ignore_case: bool,
    pub hide: Vec<String>,
    offset: Option<String>,
    limit: Option<String>,
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl CollectionQuery {
    /// Parses a raw (percent-encoded) query string. Like Rails, a repeated
    /// plain parameter keeps its last value; `filter[]` accumulates.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut q = CollectionQuery::default();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "attributes" => q.attributes = list(&value),
                "expand" => q.expand = list(&value),
                "filter[]" | "filter" => q.filters.push(value.into_owned()),
                "by_tag" => q.by_tag = Some(value.into_owned()),
                "sort_by" => q.sort_by = list(&value),
                "sort_order" => q.sort_order = list(&value),
                "sort_options" => {
                    q.sort_ignore_case = list(&value)
                        .iter()
                        .any(|o| o.eq_ignore_ascii_case("ignore_case"))
                }
                "hide" => q.hide = list(&value),
                "offset" => q.offset = Some(value.into_owned()),
                "limit" => q.limit = Some(value.into_owned()),
                _ => {}
            }
        }
        q
    }

    pub fn expands(&self, what: &str) -> bool {
        self.expand.iter().any(|e| e == what)
    }

    pub fn hides(&self, what: &str) -> bool {
        self.hide.iter().any(|h| h == what)
    }

    /// Offset and (capped) limit. Paging is always on: no `limit` means 1000.
    pub fn paging(&self) -> Result<Paging, MiqError> {
        let offset = self.offset.as_deref().map_or(0, ruby_to_i);
        let requested = self
            .limit
            .as_deref()
            .map_or(MAX_RESULTS_PER_PAGE as i64, ruby_to_i);
        if self.offset.is_some() && requested == 0 {
            return Err(MiqError::bad_request(
                "Limit must be greater than zero if offset is specified",
            ));
        }
        if offset < 0 || requested < 0 {
            return Err(MiqError::bad_request(format!(
                "Invalid paging offset={offset} limit={requested}"
            )));
        }
        Ok(Paging {
            offset: offset as u64,
            limit: (requested as u64).min(MAX_RESULTS_PER_PAGE),
        })
    }
}

/// Ruby's `String#to_i`: leading sign and digits, anything else is 0.
fn ruby_to_i(s: &str) -> i64 {
    let t = s.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub offset: u64,
    /// 0 only without an explicit offset: an empty page with no links.
    pub limit: u64,
}

impl Paging {
    /// The slice `[offset, offset+limit)` of `total` items.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = (self.offset.min(total as u64)) as usize;
        let end = (self.offset.saturating_add(self.limit).min(total as u64)) as usize;
        start..end
    }

    pub fn pages(&self, paging_count: u64) -> Option<u64> {
        (self.limit > 0).then(|| paging_count.div_ceil(self.limit))
    }

    /// `links` in LinksBuilder's order: self, next, previous, first, last.
    /// `href` is the request URL as received. `last` keeps the real server's
    /// off-by-one: when `paging_count` is a multiple of `limit` it points at
    /// an empty page past the end.
    pub fn links(&self, href: &str, paging_count: u64) -> Vec<(&'static str, String)> {
        if self.limit == 0 {
            return Vec::new();
        }
        let (offset, limit) = (self.offset, self.limit);
        let mut links = vec![("self", format_href(href, offset, offset))];
        if offset + limit < paging_count {
            links.push(("next", format_href(href, offset, offset + limit)));
        }
        if offset > 0 {
            let previous = offset.saturating_sub(limit);
            links.push(("previous", format_href(href, offset, previous)));
        }
        links.push(("first", format_href(href, offset, 0)));
        let last = paging_count - paging_count % limit;
        links.push(("last", format_href(href, offset, last)));
        links
    }
}

/// LinksBuilder#format_href: a plain text substitution of `offset=<current>`
/// when the URL mentions "offset" anywhere, else `offset=N` appended.
fn format_href(href: &str, current: u64, new_offset: u64) -> String {
    if href.contains("offset") {
        href.replacen(
            &format!("offset={current}"),
            &format!("offset={new_offset}"),
            1,
        )
    } else if href.contains('?') {
        format!("{href}&offset={new_offset}")
    } else {
        format!("{href}?offset={new_offset}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(raw: &str) -> Result<Paging, MiqError> {
        CollectionQuery::parse(Some(raw)).paging()
    }

    #[test]
    fn limit_defaults_to_and_is_capped_at_1000() {
        assert_eq!(
            paging("").ok(),
            Some(Paging {
                offset: 0,
                limit: 1000
            })
        );
        assert_eq!(
            paging("offset=5&limit=5000").ok(),
            Some(Paging {
                offset: 5,
                limit: 1000
            })
        );
        assert!(paging("offset=0&limit=0").is_err());
        assert_eq!(
            paging("limit=0").ok(),
            Some(Paging {
                offset: 0,
                limit: 0
            })
        );
    }

    #[test]
    fn links_follow_links_builder() {
        let p = Paging {
            offset: 2,
            limit: 2,
        };
        let links = p.links("http://h/api/vms?offset=2&limit=2", 7);
        let names: Vec<&str> = links.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["self", "next", "previous", "first", "last"]);
        assert_eq!(links[1].1, "http://h/api/vms?offset=4&limit=2");
        assert_eq!(links[4].1, "http://h/api/vms?offset=6&limit=2");
        // No offset in the URL: appended.
        let p = Paging {
            offset: 0,
            limit: 1000,
        };
        let links = p.links("http://h/api/vms?expand=resources", 2500);
        assert_eq!(links[1].1, "http://h/api/vms?expand=resources&offset=1000");
        let links = p.links("http://h/api/vms", 10);
        assert_eq!(links[0].1, "http://h/api/vms?offset=0");
    }

    #[test]
    fn last_link_bug_on_exact_multiples() {
        let p = Paging {
            offset: 0,
            limit: 1000,
        };
        let links = p.links("http://h/api/vms?limit=1000&offset=0", 2000);
        let last = links
            .iter()
            .find(|(n, _)| *n == "last")
            .map(|(_, h)| h.as_str());
        assert_eq!(last, Some("http://h/api/vms?limit=1000&offset=2000"));
        assert_eq!(p.pages(2000), Some(2));
    }

    #[test]
    fn filters_accumulate_and_plain_params_keep_the_last() {
        let q = CollectionQuery::parse(Some(
            "filter%5B%5D=name%3D%27a%27&filter[]=id%3E3&expand=resources&expand=tags",
        ));
        assert_eq!(q.filters, ["name='a'", "id>3"]);
        assert_eq!(q.expand, ["tags"]);
    }
}
