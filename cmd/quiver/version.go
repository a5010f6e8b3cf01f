package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version of quiver and of Go it was built with",
		Long: `Version prints, as bbolt version does, the version of the quiver module the
tool was built from ("(devel)" for a build inside its own checkout), the Go
version and the platform; and the VCS revision when the build recorded one.`,
		Example: "  quiver version",
		Args:    argsBetween(0, 0),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			version, revision := "unknown", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				if bi.Main.Version != "" {
					version = bi.Main.Version
				}
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						revision = s.Value
					}
				}
			}
			fmt.Fprintf(w, "quiver Version: %s\n", version)
			if revision != "" {
				fmt.Fprintf(w, "VCS Revision: %s\n", revision)
			}
			fmt.Fprintf(w, "Go Version: %s\n", runtime.Version())
			fmt.Fprintf(w, "Go OS/Arch: %s/%s\n", runtime.GOOS, runtime.GOARCH)
			return nil
		}),
	}
}
