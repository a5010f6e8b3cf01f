package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/pflag"
)

// Keys, values and bucket names are bytes; the tool prints them in the
// format --format names and reads them from arguments in the one
// --parse-format names. The names are bbolt's.
//
//	--format         prints
//	auto             printable UTF-8 as it is, anything else as hex (default)
//	ascii-encoded    a double-quoted Go string in ASCII: "k\x00\u00e9"
//	hex              lower-case hex
//	bytes            the bytes as they are
//	redacted         <redacted len:N sha256:...>, to share output safely
//
//	--parse-format   reads
//	bytes            the argument's bytes as they are (default)
//	ascii-encoded    a double-quoted Go string, as --format ascii-encoded
//	                 prints it; an argument without the quotes is taken as
//	                 it is, as bbolt takes it
//	hex              hex digits
//
// bbolt's ascii-encoded prints with %q, which leaves printable non-ASCII
// runes as they are; quiver escapes them, as the name promises. Either
// reads back with --parse-format ascii-encoded.

const (
	outputFormats = "auto|ascii-encoded|hex|bytes|redacted"
	inputFormats  = "bytes|ascii-encoded|hex"
)

// formatBytes renders b in format, which addFormatFlag has checked.
func formatBytes(b []byte, format string) string {
	switch format {
	case "ascii-encoded":
		return strconv.QuoteToASCII(string(b))
	case "hex":
		return hex.EncodeToString(b)
	case "bytes":
		return string(b)
	case "redacted":
		return fmt.Sprintf("<redacted len:%d sha256:%x>", len(b), sha256.Sum256(b))
	}
	if isPrintable(b) {
		return string(b)
	}
	return hex.EncodeToString(b)
}

// isPrintable reports whether b is valid UTF-8 of printable runes only.
func isPrintable(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 || !unicode.IsPrint(r) {
			return false
		}
		b = b[n:]
	}
	return true
}

// parseBytes reads an argument in format, which addParseFormatFlag has
// checked.
func parseBytes(s, format string) ([]byte, error) {
	switch format {
	case "hex":
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not hex: %w", s, err)
		}
		return b, nil
	case "ascii-encoded":
		if len(s) >= 2 && strings.HasPrefix(s, `"`) && strings.HasSuffix(s, `"`) {
			u, err := strconv.Unquote(s)
			if err != nil {
				return nil, fmt.Errorf("%s is not a quoted string: %w", s, err)
			}
			return []byte(u), nil
		}
	}
	return []byte(s), nil
}

// parseAll reads every argument of args in format.
func parseAll(args []string, format string) ([][]byte, error) {
	out := make([][]byte, len(args))
	for i, a := range args {
		b, err := parseBytes(a, format)
		if err != nil {
			return nil, &usageError{err}
		}
		out[i] = b
	}
	return out, nil
}

// choice is a string flag value limited to a set of words, so that a bad
// --format is reported by the flag parser, as bad usage, before anything
// is opened.
type choice struct {
	value   string
	allowed []string
}

func newChoice(def, allowed string) *choice {
	return &choice{value: def, allowed: strings.Split(allowed, "|")}
}

func (c *choice) String() string { return c.value }
func (c *choice) Type() string   { return "string" }

func (c *choice) Set(s string) error {
	for _, a := range c.allowed {
		if s == a {
			c.value = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(c.allowed, ", "))
}

// addFormatFlag adds --format (-f, as bbolt's keys has it) for output.
func addFormatFlag(fs *pflag.FlagSet, what string) *choice {
	c := newChoice("auto", outputFormats)
	fs.VarP(c, "format", "f", "how to print "+what+": "+outputFormats)
	return c
}

// addParseFormatFlag adds --parse-format for arguments.
func addParseFormatFlag(fs *pflag.FlagSet, what string) *choice {
	c := newChoice("bytes", inputFormats)
	fs.Var(c, "parse-format", "how to read "+what+" from the arguments: "+inputFormats)
	return c
}
