package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/quiverdb/quiver"
	"github.com/spf13/cobra"
)

// The tool's outcomes beyond success. run maps them to exit statuses:
//
//	usageError  2, with the command's usage (also every error of cobra's own)
//	failure     1, the command's error in one line
//	exitStatus  its status, nothing more printed (the command said it all)

// usageError reports bad usage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// failure is an error a command returned while running.
type failure struct{ err error }

func (e *failure) Error() string { return e.err.Error() }
func (e *failure) Unwrap() error { return e.err }

// exitStatus ends the tool with status without a message: check uses it
// after printing its problems and their count.
type exitStatus struct{ status int }

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// action adapts a command's body for cobra: the errors it returns are
// failures unless they report bad usage or carry their own status. A bare
// corruption error, which a transaction returns for a damaged page it met,
// is said to be about the database file, the first argument.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ue *usageError
		var st *exitStatus
		if err == nil || errors.As(err, &ue) || errors.As(err, &st) {
			return err
		}
		var ce *quiver.CorruptionError
		if errors.As(err, &ce) && err == error(ce) && len(args) > 0 {
			err = &openError{fmt.Sprintf("%s: damaged database: %s", args[0], strings.TrimPrefix(ce.Error(), "quiver: ")), err}
		}
		return &failure{err}
	}
}

// argsBetween accepts min to max positional arguments (max < 0: no limit).
func argsBetween(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= min && (max < 0 || len(args) <= max) {
			return nil
		}
		want := fmt.Sprintf("%d to %d", min, max)
		switch {
		case max == 0:
			want = "no"
		case max < 0:
			want = fmt.Sprintf("at least %d", min)
		case min == max:
			want = fmt.Sprint(min)
		}
		return usagef("want %s arguments, got %d", want, len(args))
	}
}

// oneLine joins the lines of a message (errors.Join separates its errors
// with newlines), so that every error is one line on stderr.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}
