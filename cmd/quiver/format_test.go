package main

import (
	"bytes"
	"slices"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		format string
		want   string
	}{
		{[]byte("alice"), "auto", "alice"},
		{[]byte("héllo wörld"), "auto", "héllo wörld"},
		{[]byte{}, "auto", ""},
		{[]byte{0, 1, 0xfe}, "auto", "0001fe"},
		{[]byte("tab\there"), "auto", "7461620968657265"}, // a tab is not printable
		{[]byte{0xc3}, "auto", "c3"},                      // invalid UTF-8
		{[]byte("alice"), "hex", "616c696365"},
		{[]byte("a\x00é\""), "ascii-encoded", `"a\x00\u00e9\""`},
		{[]byte{0, 0xff}, "bytes", "\x00\xff"},
		{[]byte("x"), "redacted", "<redacted len:1 sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881>"},
	} {
		if got := formatBytes(tc.in, tc.format); got != tc.want {
			t.Errorf("formatBytes(%q, %s) = %q, want %q", tc.in, tc.format, got, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in, format string
		want       []byte
		bad        bool
	}{
		{"alice", "bytes", []byte("alice"), false},
		{`"quoted"`, "bytes", []byte(`"quoted"`), false},
		{`a\x00`, "bytes", []byte(`a\x00`), false},
		{"616c696365", "hex", []byte("alice"), false},
		{"00FF", "hex", []byte{0, 0xff}, false},
		{"0", "hex", nil, true},
		{"zz", "hex", nil, true},
		{`"a\x00\u00e9"`, "ascii-encoded", []byte("a\x00é"), false},
		{"plain", "ascii-encoded", []byte("plain"), false}, // as bbolt reads it
		{`"bad\q"`, "ascii-encoded", nil, true},
	} {
		got, err := parseBytes(tc.in, tc.format)
		if (err != nil) != tc.bad || !bytes.Equal(got, tc.want) {
			t.Errorf("parseBytes(%q, %s) = %q, %v", tc.in, tc.format, got, err)
		}
	}
}

// TestFormatRoundTrip checks that what --format prints, --parse-format
// reads back, for the formats both have.
func TestFormatRoundTrip(t *testing.T) {
	values := [][]byte{{}, []byte("plain"), {0, 1, 2, 0xff}, []byte("\"quotes\" and \\ and é"), bytes.Repeat([]byte{0x80}, 100)}
	for _, format := range []string{"hex", "ascii-encoded", "bytes"} {
		for _, v := range values {
			got, err := parseBytes(formatBytes(v, format), format)
			if err != nil || !bytes.Equal(got, v) {
				t.Errorf("%s: %q came back as %q, %v", format, v, got, err)
			}
		}
	}
}

func TestLongDashes(t *testing.T) {
	root := newRootCommand()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"bench", "-count", "5", "-no-sync"}, []string{"bench", "--count", "5", "--no-sync"}},
		{[]string{"bench", "-count=5"}, []string{"bench", "--count=5"}},
		// A flag's value is left alone, even when it looks like a flag.
		{[]string{"bench", "--path", "-count", "-path", "-work"}, []string{"bench", "--path", "-count", "--path", "-work"}},
		{[]string{"keys", "-f", "hex", "-format", "hex", "db", "b"}, []string{"keys", "-f", "hex", "--format", "hex", "db", "b"}},
		// Shorthands, unknown flags and what follows -- are pflag's.
		{[]string{"compact", "-o", "-timeout", "-timeout", "1s", "src"}, []string{"compact", "-o", "-timeout", "--timeout", "1s", "src"}},
		{[]string{"keys", "-nope", "db", "--", "-format"}, []string{"keys", "-nope", "db", "--", "-format"}},
		{[]string{"nope", "-count"}, []string{"nope", "-count"}},
	} {
		if got := longDashes(root, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("longDashes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("first\nsecond\r\n\nthird\n"); got != "first; second; third" {
		t.Errorf("oneLine = %q", got)
	}
}
