// Package version names the bbolt API version this module provides.
package version

// Version is the bbolt release whose API the module provides.
var Version = "1.5.0"
