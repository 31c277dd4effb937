//! A delivery's push rows between rendering and sending: each rendered row is checked as the source gives it
//! and written, as its push row's JSON, one line each, to an unnamed temporary file; the rows are then sent
//! from that file one batch at a time. So a large item is checked whole before its first POST, its source is
//! read once per attempt (and not held open while Power BI takes the POSTs), and memory holds one batch
//! whatever the item's size. The file has no name from the start (`O_TMPFILE` on Linux): the system removes
//! it when it is dropped, and when the process is killed.
//!
//! The I/O is blocking, on purpose: a batch is 10,000 short lines through a buffer, read from and written to
//! the page cache, which takes less time than handing it to a thread would.

use crate::item::Item;
use crate::rows::{MAX_ROWS, Row, RowError, format_instant, push_row};
use serde_json::Value;
use serde_json::value::RawValue;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::ops::Range;
use time::OffsetDateTime;

/// Why a row could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The row does not fit the item: nothing may be sent.
    #[error(transparent)]
    Row(#[from] RowError),
    /// The temporary file could not be written (the disk is full, the temporary directory is missing).
    #[error("writing the delivery's rows to a temporary file (in {dir}): {source}", dir = std::env::temp_dir().display())]
    Io {
        #[from]
        source: io::Error,
    },
}

/// The push rows being written.
pub struct Spool {
    item: Item,
    stamp: Value,
    out: BufWriter<File>,
    len: usize,
}

impl Spool {
    /// An empty spool for `item`'s rows, stamped with `refreshed`, in the system's temporary directory
    /// (`TMPDIR`).
    pub fn create(item: &Item, refreshed: OffsetDateTime) -> Result<Self, SpoolError> {
        Ok(Self {
            item: item.clone(),
            stamp: Value::String(format_instant(refreshed)),
            out: BufWriter::with_capacity(64 * 1024, tempfile::tempfile()?),
            len: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks a rendered row (the next one: the error counts rows from 1) and writes its push row.
    pub fn push(&mut self, row: &Row) -> Result<(), SpoolError> {
        if self.len >= MAX_ROWS {
            return Err(SpoolError::Row(RowError {
                row: self.len + 1,
                column: String::new(),
                problem: format!(
                    "the source gave more than {MAX_ROWS} rows; a push table holds at most {MAX_ROWS}: filter or aggregate the query"
                ),
            }));
        }
        let pushed = push_row(&self.item, self.len + 1, row, &self.stamp)?;
        // Compact JSON escapes every line break inside a value: a row is exactly one line.
        serde_json::to_writer(&mut self.out, &pushed).map_err(io::Error::from)?;
        self.out.write_all(b"\n")?;
        self.len += 1;
        Ok(())
    }

    /// The rows written, ready to be read back.
    pub fn finish(self) -> Result<SpooledRows, SpoolError> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(SpooledRows { input: BufReader::with_capacity(64 * 1024, file), len: self.len, position: 0, line: String::new() })
    }
}

/// The rows a delivery sends, read back batch by batch.
pub struct SpooledRows {
    input: BufReader<File>,
    len: usize,
    /// The index of the next line the reader gives.
    position: usize,
    line: String,
}

impl SpooledRows {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The push rows `range` (clipped to the rows there are), exactly as they were written. A delivery asks for
    /// its batches in order, so each is read on from the last; an earlier range reads from the start again.
    pub fn batch(&mut self, range: Range<usize>) -> io::Result<Vec<Box<RawValue>>> {
        let end = range.end.min(self.len);
        if range.start < self.position {
            self.input.rewind()?;
            self.position = 0;
        }
        while self.position < range.start.min(end) {
            self.next_line()?;
        }
        let mut rows = Vec::with_capacity(end.saturating_sub(range.start));
        while self.position < end {
            self.next_line()?;
            let json = self.line.trim_end_matches('\n').to_owned();
            rows.push(RawValue::from_string(json).map_err(io::Error::from)?);
        }
        Ok(rows)
    }

    fn next_line(&mut self) -> io::Result<()> {
        self.line.clear();
        if self.input.read_line(&mut self.line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the delivery's temporary file ended early"));
        }
        self.position += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::push_rows;
    use crate::rows::tests::{item, rows};
    use proptest::prelude::*;
    use serde_json::json;

    const AT: OffsetDateTime = time::macros::datetime!(2026-12-02 09:30 UTC);

    /// The batch as text, to compare with what `push_rows` gives written as JSON.
    fn texts(batch: &[Box<RawValue>]) -> Vec<String> {
        batch.iter().map(|raw| raw.get().to_owned()).collect()
    }

    fn expected(item: &Item, rendered: &[Row]) -> Vec<String> {
        push_rows(item, rendered, AT).expect("fits").iter().map(|row| serde_json::to_string(row).expect("JSON")).collect()
    }

    #[test]
    fn the_spool_gives_back_exactly_the_push_rows_batch_by_batch() {
        let sales = item("category-series", &[("Region", "text"), ("Amount", "decimal")], (Some("Amount"), Some("Region"), None));
        let rendered = rows(json!([
            {"Region": "East", "Amount": 5.5},
            {"Region": null, "Amount": null},
            {"Region": "two\nlines", "Amount": 0.1}
        ]));
        let mut spool = Spool::create(&sales, AT).expect("a temporary file");
        for row in &rendered {
            spool.push(row).expect("fits");
        }
        let error = spool.push(&rows(json!([{"Region": 4, "Amount": 1}]))[0]).expect_err("refused");
        assert_eq!(error.to_string(), "row 4, column 'Region': expected text, got an integer", "counted from the spool's rows");
        assert_eq!(spool.len(), 3, "a refused row is not kept");
        let mut spooled = spool.finish().expect("read back");
        assert_eq!(texts(&spooled.batch(0..2).expect("rows")), expected(&sales, &rendered[0..2]));
        assert_eq!(texts(&spooled.batch(2..10).expect("rows")), expected(&sales, &rendered[2..]), "clipped to the rows there are");
        assert_eq!(texts(&spooled.batch(1..2).expect("rows")), expected(&sales, &rendered[1..2]), "an earlier range reads again");
        assert!(spooled.batch(3..4).expect("none").is_empty());
    }

    proptest! {
        /// Whatever a table item's rows are, and however they are cut into batches, the batches are exactly the
        /// push rows, in order.
        #[test]
        fn the_spool_round_trips_any_table_rows_in_any_batches(
            cells in prop::collection::vec((".{0,12}", any::<bool>(), -1e9f64..1e9), 0..40),
            batch in 1usize..7,
            skip in 0usize..10,
        ) {
            let list = item("table", &[("A", "text"), ("B", "boolean"), ("C", "decimal")], (None, None, None));
            let rendered: Vec<Row> = cells.iter().map(|(a, b, c)| rows(json!([{"A": a, "B": b, "C": c}])).remove(0)).collect();
            let mut spool = Spool::create(&list, AT).expect("a temporary file");
            for row in &rendered {
                spool.push(row).expect("fits");
            }
            let mut spooled = spool.finish().expect("read back");
            let mut read = Vec::new();
            let mut start = skip.min(rendered.len());
            while start < rendered.len() {
                read.extend(texts(&spooled.batch(start..start + batch).expect("rows")));
                start += batch;
            }
            prop_assert_eq!(read, expected(&list, &rendered[skip.min(rendered.len())..]));
        }
    }
}
