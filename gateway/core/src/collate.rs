//! The order of text in every sorted list: Chinese characters by their
//! pinyin (with the tone: 阿 a1 before 李 li3 before 张 zhang1), ASCII
//! letters without case, everything else by code point. The one comparator
//! of both stores: the embedded one registers it as the SQLite collation
//! [`COLLATION`], the others sort with it in memory (`doc_query`).
//!
//! The key of a text is its characters with each Chinese character written
//! as its pinyin and tone number (`张三` → `zhang1san1`), other characters
//! as they are, ASCII letters in lower case; keys compare by code point, so
//! Chinese and Latin names interleave by their letters ("Li Lei" next to
//! 李雷) and the tone digit ends a syllable (西安 xi1an1 before 先 xian1).
//! Texts of equal keys (homophones such as 李 and 里, or "Ann" and "ann")
//! compare by their bytes with ASCII case folded (SQLite's NOCASE), so two
//! texts are equal only when NOCASE says so. On ASCII text the order is
//! exactly NOCASE. A character of several readings (多音字) takes its most
//! common one.

use std::cmp::Ordering;

use pinyin::ToPinyin;

/// The name of the collation the SQLite store registers on each connection.
pub const COLLATION: &str = "HERALD_TEXT";

/// The sort key's characters (see the module docs), without allocating.
fn key(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(|c| {
        let (spelled, kept) = match c.to_pinyin() {
            Some(p) => (p.with_tone_num_end(), None),
            None => ("", Some(c.to_ascii_lowercase())),
        };
        spelled.chars().chain(kept)
    })
}

/// SQLite's NOCASE: bytes, ASCII letters folded.
fn nocase(a: &str, b: &str) -> Ordering {
    a.bytes().map(|c| c.to_ascii_lowercase()).cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// The order of two texts (see the module docs).
pub fn text_order(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return nocase(a, b);
    }
    key(a).cmp(key(b)).then_with(|| nocase(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| text_order(a, b));
        v
    }

    #[test]
    fn chinese_sorts_by_pinyin_and_latin_without_case() {
        assert_eq!(sorted(&["张三", "李四", "阿明", "王五", "赵六"]), ["阿明", "李四", "王五", "张三", "赵六"]);
        assert_eq!(sorted(&["bob", "Alice", "Carol"]), ["Alice", "bob", "Carol"]);
        assert_eq!(text_order("李四", "张三"), Ordering::Less, "code point order would put 张 (U+5F20) before 李 (U+674E)");
        assert_eq!(text_order("西安", "先"), Ordering::Less, "xi before xian");
        assert_eq!(text_order("alice", "ALICE"), Ordering::Equal, "NOCASE on ASCII");
        assert_ne!(text_order("李", "里"), Ordering::Equal, "homophones are told apart");
        assert_eq!(sorted(&["Zoe", "李雷", "Ann"]), ["Ann", "李雷", "Zoe"], "Latin and Chinese interleave by letters");
    }

    #[test]
    fn the_order_is_total_and_consistent() {
        let words = ["", "a", "A", "阿", "啊", "ab", "李", "里", "li", "Li", "李四", "张三", "Ćhen", "chen", "陈", "1", "x1", "é", "😀"];
        for a in words {
            assert_eq!(text_order(a, a), Ordering::Equal);
            for b in words {
                assert_eq!(text_order(a, b), text_order(b, a).reverse(), "{a} {b}");
                for c in words {
                    if text_order(a, b) == Ordering::Less && text_order(b, c) == Ordering::Less {
                        assert_eq!(text_order(a, c), Ordering::Less, "{a} < {b} < {c}");
                    }
                }
            }
        }
    }
}
