// Command quiver inspects and exercises quiver databases. Its verbs follow
// bbolt's command line, so that people who know one know the other:
//
//	quiver <command> [flags] [arguments]
//
// Each command lives in a file of its own that registers it with
// register; main only dispatches on the first argument.
//
// Exit status: 0 on success, 1 when the command failed, 2 on bad usage
// (an unknown command, flag or flag value).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one verb of the quiver tool.
type command struct {
	name    string
	summary string // one line, for the command list
	// usage prints the command's help: synopsis and flags.
	usage func(w io.Writer)
	// run executes the command with the arguments after its name. It
	// returns a *usageError for bad usage.
	run func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]*command{}

// register adds c to the tool; each command's file calls it from init.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("quiver: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// usageError reports bad usage: the tool exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the tool with args (without the program name) and returns the
// exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return help(rest, stdout, stderr)
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "quiver: unknown command %q\nRun 'quiver help' for usage.\n", name)
		return 2
	}
	err := c.run(rest, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		c.usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "quiver %s: %v\n", name, err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run 'quiver help %s' for usage.\n", name)
		return 2
	}
	return 1
}

// help prints the tool's usage, or a command's with quiver help <command>.
func help(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		printUsage(stdout)
		return 0
	case 1:
		if c, ok := commands[args[0]]; ok {
			c.usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "quiver help: unknown command %q\n", args[0])
		return 2
	}
	fmt.Fprintln(stderr, "usage: quiver help [command]")
	return 2
}

func printUsage(w io.Writer) {
	names := make([]string, 0, len(commands))
	width := 0
	for n := range commands {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("quiver is a tool for quiver databases.\n\nUsage:\n\n\tquiver <command> [flags] [arguments]\n\nThe commands are:\n\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t%-*s  %s\n", width, n, commands[n].summary)
	}
	b.WriteString("\nUse 'quiver help <command>' for more about a command.\n")
	io.WriteString(w, b.String())
}
