// Command quiver inspects, edits and exercises quiver databases. Its verbs,
// flags and output follow bbolt's command line, so that people who know one
// know the other:
//
//	quiver <command> [flags] [arguments]
//
// Each command lives in a file of its own with a constructor that returns
// its *cobra.Command; newRootCommand gathers them.
//
// Exit status: 0 on success, 1 when the command failed (including a file
// that is not a quiver database, or problems found by check), 2 on bad usage
// (an unknown command, flag, flag value or a wrong number of arguments),
// after which the command's usage is printed on stderr.
//
// Commands that only read open the database read-only, under a shared lock
// they wait --timeout for, so that they run beside other readers and fail
// with one line, rather than hang, while a writer has the file open.
package main
