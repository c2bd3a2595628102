//! Column alignment identical to Go's `text/tabwriter`.
//!
//! The `tabwriter` crate is a port, but it does not line up with Go for
//! docker's tables: it adds the padding on top of `minwidth` (Go counts the
//! padding inside it, so a `TAG` column is 10 wide in docker, 13 with the
//! crate) and it measures terminal display width where Go counts runes. This
//! is a small reimplementation of Go's algorithm instead.
//!
//! What it keeps from Go: cells are terminated by `\t` (or `\v`); the text
//! after a line's last tab is not part of any column and is written
//! unpadded; a column's width is decided per *column block*, the run of
//! consecutive lines that have a cell in that column; `\f` and a line with a
//! single cell end every block and flush. What it leaves out: Go's flags
//! (`AlignRight`, `Debug`, `DiscardEmptyColumns`, `FilterHTML`, `TabIndent`,
//! `StripEscape`) and `0xff` escapes, none of which docker's formatter uses.

use std::io::{self, Write};

/// docker's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` settings.
const DOCKER_MIN_WIDTH: usize = 10;
const DOCKER_TAB_WIDTH: usize = 1;
const DOCKER_PADDING: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Cell {
    /// Bytes of cell text in the buffer.
    size: usize,
    /// Width in runes, as Go's `utf8.RuneCount`.
    width: usize,
}

/// A writer that aligns tab-separated cells into columns like Go's
/// `text/tabwriter`. Output is buffered until [`Write::flush`], a form feed,
/// or a line that ends all column blocks.
#[derive(Debug)]
pub struct TableWriter<W: Write> {
    out: W,
    min_width: usize,
    tab_width: usize,
    padding: usize,
    pad_char: u8,
    /// Text of every buffered cell, in order.
    buf: Vec<u8>,
    /// Terminated cells per line; the last line is the one being written.
    lines: Vec<Vec<Cell>>,
    /// Where the cell currently being written starts in `buf`.
    cell_start: usize,
    /// Column widths of the enclosing blocks while formatting.
    widths: Vec<usize>,
}

impl<W: Write> TableWriter<W> {
    /// Go's `tabwriter.NewWriter(out, minwidth, tabwidth, padding, padchar, 0)`.
    ///
    /// `min_width` includes the padding; with `pad_char` `b'\t'` padding is
    /// done with tabs assuming `tab_width`-column tab stops.
    pub fn new(out: W, min_width: usize, tab_width: usize, padding: usize, pad_char: u8) -> Self {
        TableWriter {
            out,
            min_width,
            tab_width,
            padding,
            pad_char,
            buf: Vec::new(),
            lines: vec![Vec::new()],
            cell_start: 0,
            widths: Vec::new(),
        }
    }

    /// The writer docker's formatter uses for every table:
    /// minwidth 10, tabwidth 1, padding 3, padded with spaces.
    pub fn docker(out: W) -> Self {
        Self::new(
            out,
            DOCKER_MIN_WIDTH,
            DOCKER_TAB_WIDTH,
            DOCKER_PADDING,
            b' ',
        )
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    /// Ends the cell being written and returns how many cells its line now has.
    fn terminate_cell(&mut self) -> usize {
        let text = &self.buf[self.cell_start..];
        let cell = Cell {
            size: text.len(),
            width: rune_count(text),
        };
        self.cell_start = self.buf.len();
        match self.lines.last_mut() {
            Some(line) => {
                line.push(cell);
                line.len()
            }
            None => {
                self.lines.push(vec![cell]);
                1
            }
        }
    }

    /// Formats and writes everything buffered, then starts afresh.
    fn flush_buffered(&mut self) -> io::Result<()> {
        if self.buf.len() > self.cell_start {
            self.terminate_cell();
        }
        let result = self.format(0, 0, self.lines.len());
        self.buf.clear();
        self.lines.clear();
        self.lines.push(Vec::new());
        self.cell_start = 0;
        self.widths.clear();
        result.map(|_| ())
    }

    /// Go's `format`: finds the column block starting at each line for the
    /// next column, sizes it, and recurses into the columns to its right.
    fn format(&mut self, pos0: usize, line0: usize, line1: usize) -> io::Result<usize> {
        let mut pos = pos0;
        let mut line0 = line0;
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            // The last cell of a line is not in a column, hence the `- 1`.
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            pos = self.write_lines(pos, line0, this)?;
            line0 = this;

            let mut width = self.min_width;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].width + self.padding);
                this += 1;
            }

            self.widths.push(width);
            pos = self.format(pos, line0, this)?;
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(pos, line0, line1)
    }

    /// Go's `writeLines`: writes lines `line0..line1` with the current widths.
    fn write_lines(&mut self, pos0: usize, line0: usize, line1: usize) -> io::Result<usize> {
        let mut pos = pos0;
        for i in line0..line1 {
            for j in 0..self.lines[i].len() {
                let cell = self.lines[i][j];
                if cell.size > 0 {
                    self.out.write_all(&self.buf[pos..pos + cell.size])?;
                    pos += cell.size;
                }
                if let Some(&column_width) = self.widths.get(j) {
                    self.write_padding(cell.width, column_width)?;
                }
            }
            if i + 1 == self.lines.len() {
                // The line being written has no newline yet: emit its text so far.
                let pending = self.buf.len() - self.cell_start;
                self.out.write_all(&self.buf[pos..pos + pending])?;
                pos += pending;
            } else {
                self.out.write_all(b"\n")?;
            }
        }
        Ok(pos)
    }

    fn write_padding(&mut self, text_width: usize, cell_width: usize) -> io::Result<()> {
        if self.pad_char == b'\t' {
            if self.tab_width == 0 {
                return Ok(());
            }
            let cell_width = cell_width.div_ceil(self.tab_width) * self.tab_width;
            let n = cell_width.saturating_sub(text_width);
            let tabs = n.div_ceil(self.tab_width);
            return self.out.write_all(&vec![b'\t'; tabs]);
        }
        let n = cell_width.saturating_sub(text_width);
        self.out.write_all(&vec![self.pad_char; n])
    }
}

impl<W: Write> Write for TableWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, &byte) in data.iter().enumerate() {
            if !matches!(byte, b'\t' | b'\x0b' | b'\n' | b'\x0c') {
                continue;
            }
            self.buf.extend_from_slice(&data[start..i]);
            start = i + 1;
            let cells = self.terminate_cell();
            if byte == b'\n' || byte == b'\x0c' {
                self.lines.push(Vec::new());
                // A single-cell line cannot influence later columns, so
                // everything before it can be written out now, as Go does.
                if byte == b'\x0c' || cells == 1 {
                    self.flush_buffered()?;
                }
            }
        }
        self.buf.extend_from_slice(&data[start..]);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffered()?;
        self.out.flush()
    }
}

/// Go's `utf8.RuneCount`: each byte of an invalid sequence counts as one rune.
fn rune_count(bytes: &[u8]) -> usize {
    bytes
        .utf8_chunks()
        .map(|chunk| chunk.valid().chars().count() + chunk.invalid().len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_table(input: &str) -> String {
        let mut tw = TableWriter::docker(Vec::new());
        tw.write_all(input.as_bytes()).expect("write to Vec");
        let out = tw.into_inner().expect("flush to Vec");
        String::from_utf8(out).expect("utf-8 output")
    }

    #[test]
    fn docker_images_table() {
        let input = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n\
                     nginx\tlatest\t87a94228f133\t2 weeks ago\t133MB\n\
                     test_nginx\tv1.0\t87a94228f133\t2 weeks ago\t133MB\n\
                     hello-world\tlatest\tfeb5d9fea6a5\t5 weeks ago\t13.3kB\n";
        let expected = "REPOSITORY    TAG       IMAGE ID       CREATED       SIZE\n\
                        nginx         latest    87a94228f133   2 weeks ago   133MB\n\
                        test_nginx    v1.0      87a94228f133   2 weeks ago   133MB\n\
                        hello-world   latest    feb5d9fea6a5   5 weeks ago   13.3kB\n";
        assert_eq!(docker_table(input), expected);
    }

    #[test]
    fn docker_history_table_pads_cell_before_empty_last_cell() {
        let input = "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT\n\
            87a94228f133\t2 weeks ago\t/bin/sh -c #(nop)  CMD [\"nginx\" \"-g\" \"daemon…\t0B\t\n\
            <missing>\t2 weeks ago\t/bin/sh -c #(nop)  STOPSIGNAL SIGQUIT\t0B\t\n\
            <missing>\t2 weeks ago\t/bin/sh -c #(nop) ADD file:910392427fdf089bc…\t69.3MB\t\n";
        let expected = "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT\n\
            87a94228f133   2 weeks ago   /bin/sh -c #(nop)  CMD [\"nginx\" \"-g\" \"daemon…   0B        \n\
            <missing>      2 weeks ago   /bin/sh -c #(nop)  STOPSIGNAL SIGQUIT           0B        \n\
            <missing>      2 weeks ago   /bin/sh -c #(nop) ADD file:910392427fdf089bc…   69.3MB    \n";
        assert_eq!(docker_table(input), expected);
    }

    #[test]
    fn single_column_and_two_column_tables() {
        // From docker/cli image_test.go: a lone column is never padded.
        assert_eq!(
            docker_table("REPOSITORY\nimage\nimage\n<none>\n"),
            "REPOSITORY\nimage\nimage\n<none>\n"
        );
        assert_eq!(
            docker_table("REPOSITORY\tDIGEST\nimage\tsha256:cbbf\n<none>\t<none>\n"),
            "REPOSITORY   DIGEST\nimage        sha256:cbbf\n<none>       <none>\n"
        );
    }

    #[test]
    fn column_blocks_are_per_run_of_lines() {
        // The middle line has no tab, so it ends the first block and the
        // third line is aligned on its own.
        let out = docker_table("a\tb\nlonglonglonglong\tc\nno tabs here\nx\ty\n");
        let expected = format!(
            "a{}b\nlonglonglonglong   c\nno tabs here\nx{}y\n",
            " ".repeat(18),
            " ".repeat(9)
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn ragged_lines_share_leading_columns_only() {
        let out = docker_table("a\tb\tc\nddddddddddddd\te\n");
        let expected = format!(
            "a{}b{}c\nddddddddddddd   e\n",
            " ".repeat(15),
            " ".repeat(9)
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn widths_count_runes_not_display_columns() {
        // Go's tabwriter (docker 20.10) counts runes: a CJK cell of 4 runes is
        // padded as if it were 4 columns wide.
        let out = docker_table("你好世界\tx\nab\ty\n");
        assert_eq!(out, "你好世界      x\nab        y\n");
    }

    #[test]
    fn text_without_final_newline_is_written_on_flush() {
        assert_eq!(docker_table("a\tb\nc\td"), "a         b\nc         d");
        assert_eq!(docker_table(""), "");
        assert_eq!(docker_table("\n"), "\n");
    }

    #[test]
    fn cells_split_across_writes() {
        let mut tw = TableWriter::docker(Vec::new());
        for piece in ["NA", "ME\tSI", "ZE\n你", "好\t1", "B\n"] {
            tw.write_all(piece.as_bytes()).expect("write to Vec");
        }
        let out = String::from_utf8(tw.into_inner().expect("flush")).expect("utf-8");
        assert_eq!(out, "NAME      SIZE\n你好        1B\n");
    }

    #[test]
    fn vertical_tab_and_form_feed() {
        // \v terminates a cell like \t; \f ends the line and every block.
        assert_eq!(docker_table("a\x0bb\n"), "a         b\n");
        assert_eq!(
            docker_table("aaaaaaaaaaaaaa\tb\x0cc\td\n"),
            "aaaaaaaaaaaaaa   b\nc         d\n"
        );
    }

    #[test]
    fn tab_padding_and_other_settings() {
        let mut tw = TableWriter::new(Vec::new(), 0, 8, 1, b'\t');
        tw.write_all(b"a\tb\nccccccccc\td\n").expect("write");
        let out = String::from_utf8(tw.into_inner().expect("flush")).expect("utf-8");
        assert_eq!(out, "a\t\tb\nccccccccc\td\n");

        let mut tw = TableWriter::new(Vec::new(), 0, 1, 1, b'.');
        tw.write_all(b"a\tb\nccc\td\n").expect("write");
        let out = String::from_utf8(tw.into_inner().expect("flush")).expect("utf-8");
        assert_eq!(out, "a...b\nccc.d\n");
    }

    #[test]
    fn invalid_utf8_counts_one_per_byte() {
        assert_eq!(rune_count(b"ab\xe2\x82c"), 5);
        assert_eq!(rune_count("日本".as_bytes()), 2);
    }
}
