//! Output for people (aligned columns) or for scripts (`--json`).

use serde::Serialize;

/// Prints `rows` as a table with `headers`, or as JSON when `json` is set (then `items` is printed).
pub fn print_list<T: Serialize>(json: bool, items: &[T], headers: &[&str], rows: Vec<Vec<String>>) {
    if json {
        println!("{}", serde_json::to_string_pretty(items).unwrap_or_else(|_| "[]".to_owned()));
        return;
    }
    print!("{}", table(headers, &rows));
}

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

pub fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let out = table(&["id", "name"], &[vec!["1".into(), "Sales".into()], vec!["22".into(), "Ops".into()]]);
        assert_eq!(out, "id  name\n1   Sales\n22  Ops\n");
        assert_eq!(table(&["id"], &[]), "id\n(none)\n");
    }
}
