package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the tool with args (without the program name) and returns the
// exit status. Tests call it in-process.
func run(args []string, stdout, stderr io.Writer) (status int) {
	// A file that shrinks under the tool's own mapping must not kill it
	// with SIGBUS, and no bug should reach an operator as a stack trace:
	// both become one line and status 1.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "quiver: internal error (please report): %s\n", oneLine(fmt.Sprint(r)))
			status = 1
		}
	}()
	cmd, err := execute(args, stdout, stderr)
	if err == nil {
		return 0
	}
	name := cmd.CommandPath()
	var st *exitStatus
	var f *failure
	switch {
	case errors.As(err, &st):
		return st.status
	case errors.As(err, &f):
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(f.err.Error()))
		return 1
	}
	// Everything else is bad usage: cobra's own errors (flags, arguments)
	// and the commands' usage errors.
	fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err.Error()))
	fmt.Fprint(stderr, cmd.UsageString())
	return 2
}

// execute runs the command line args and returns the command that ran (or
// failed to parse) and its error.
func execute(args []string, stdout, stderr io.Writer) (*cobra.Command, error) {
	root := newRootCommand()
	root.SetOut(stdout)
	root.SetErr(stderr)
	if len(args) == 0 {
		return root, usagef("no command given")
	}
	// Cobra reports an unknown command over several lines and, for a
	// root command that does not run, "quiver nope --help" as help; report
	// it here instead, in one line.
	if _, _, err := root.Find(args); err != nil {
		name := args[0]
		msg := fmt.Sprintf("unknown command %q", name)
		if s := root.SuggestionsFor(name); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return root, &usageError{errors.New(msg)}
	}
	// SetArgs(nil) would make cobra read os.Args.
	root.SetArgs(append([]string{}, longDashes(root, args)...))
	return root.ExecuteC()
}

// newRootCommand builds the tool: a fresh tree per run, so that flag
// values never leak from one in-process run to the next.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "quiver",
		Short: "quiver inspects, edits and exercises quiver databases",
		Long: `quiver is a tool for quiver databases. Its commands follow bbolt's command
line: info, buckets, keys, get, check, stats, inspect, pages, page, dump,
compact, bench and version, plus put and delete, and import and export, which
move a database from bbolt to quiver and back.

Keys, values and bucket names print with --format (auto, ascii-encoded, hex,
bytes or redacted) and are read from arguments with --parse-format (bytes,
ascii-encoded or hex).`,
		SilenceErrors: true, // run prints errors in one line
		SilenceUsage:  true, // and the usage only for bad usage
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.SetHelpCommand(newHelpCommand())
	root.AddCommand(
		newBenchCommand(),
		newBucketsCommand(),
		newCheckCommand(),
		newCompactCommand(),
		newDeleteCommand(),
		newDumpCommand(),
		newExportCommand(),
		newGetCommand(),
		newImportCommand(),
		newInfoCommand(),
		newInspectCommand(),
		newKeysCommand(),
		newPageCommand(),
		newPagesCommand(),
		newPutCommand(),
		newServeCommand(),
		newStatsCommand(),
		newVersionCommand(),
	)
	root.InitDefaultHelpCmd() // now, not in ExecuteC, so that execute finds it
	return root
}

// newHelpCommand replaces cobra's help command, which reports an unknown
// topic with status 0.
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "print help about the tool or a command",
		Args:  argsBetween(0, 1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			if len(args) == 0 {
				return root.Help()
			}
			c, rest, err := root.Find(args)
			if err != nil || c == root || len(rest) > 0 {
				return usagef("unknown command %q", args[0])
			}
			return c.Help()
		}),
	}
}

// longDashes rewrites "-name" and "-name=value" into "--name..." where name
// is a long flag of the command args run: Go's flag package, which bbolt's
// older tool and this one before cobra used, accepts one dash, and scripts
// written for them keep working. Anything else, shorthand clusters ("-f")
// included, is left for pflag to parse.
func longDashes(root *cobra.Command, args []string) []string {
	c, _, err := root.Find(args)
	if err != nil || c == root {
		return args
	}
	fs := c.Flags()
	out := slices.Clone(args)
	takesValue := false // the previous argument is a flag waiting for its value
	for i, a := range out {
		if takesValue {
			takesValue = false
			continue
		}
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			continue
		}
		body, hasValue := strings.TrimLeft(a, "-"), strings.Contains(a, "=")
		name, _, _ := strings.Cut(body, "=")
		switch {
		case strings.HasPrefix(a, "--"):
			if f := fs.Lookup(name); f != nil && !hasValue && f.NoOptDefVal == "" {
				takesValue = true
			}
		case len(body) == 1:
			if f := fs.ShorthandLookup(body); f != nil && f.NoOptDefVal == "" {
				takesValue = true
			}
		default:
			if f := fs.Lookup(name); f != nil {
				out[i] = "-" + a
				takesValue = !hasValue && f.NoOptDefVal == ""
			}
		}
	}
	return out
}
