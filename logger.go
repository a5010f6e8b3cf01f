package quiver

import (
	"fmt"
	"io"
	"log"
	"os"
)

// Logger receives the database's messages: Open and Close at debug level,
// failed commits as errors. Its method set is bbolt's, so a logger written
// for bbolt works here.
type Logger interface {
	Debug(v ...any)
	Debugf(format string, v ...any)
	Error(v ...any)
	Errorf(format string, v ...any)
	Info(v ...any)
	Infof(format string, v ...any)
	Warning(v ...any)
	Warningf(format string, v ...any)
	Fatal(v ...any)
	Fatalf(format string, v ...any)
	Panic(v ...any)
	Panicf(format string, v ...any)
}

// DefaultLogger writes through a standard library logger, prefixing each
// message with its level; debug messages only once EnableDebug is called.
type DefaultLogger struct {
	*log.Logger
	debug bool
}

// NewDefaultLogger returns a DefaultLogger writing to w (os.Stderr if nil).
func NewDefaultLogger(w io.Writer) *DefaultLogger {
	if w == nil {
		w = os.Stderr
	}
	return &DefaultLogger{Logger: log.New(w, "quiver: ", 0)}
}

// EnableTimestamps adds the date and time to each message.
func (l *DefaultLogger) EnableTimestamps() { l.SetFlags(l.Flags() | log.LstdFlags) }

// EnableDebug lets debug messages through.
func (l *DefaultLogger) EnableDebug() { l.debug = true }

func (l *DefaultLogger) out(level, msg string) { _ = l.Output(3, level+": "+msg) }

func (l *DefaultLogger) Debug(v ...any) {
	if l.debug {
		l.out("DEBUG", fmt.Sprint(v...))
	}
}

func (l *DefaultLogger) Debugf(format string, v ...any) {
	if l.debug {
		l.out("DEBUG", fmt.Sprintf(format, v...))
	}
}

func (l *DefaultLogger) Info(v ...any)                    { l.out("INFO", fmt.Sprint(v...)) }
func (l *DefaultLogger) Infof(format string, v ...any)    { l.out("INFO", fmt.Sprintf(format, v...)) }
func (l *DefaultLogger) Warning(v ...any)                 { l.out("WARN", fmt.Sprint(v...)) }
func (l *DefaultLogger) Warningf(format string, v ...any) { l.out("WARN", fmt.Sprintf(format, v...)) }
func (l *DefaultLogger) Error(v ...any)                   { l.out("ERROR", fmt.Sprint(v...)) }
func (l *DefaultLogger) Errorf(format string, v ...any)   { l.out("ERROR", fmt.Sprintf(format, v...)) }

// Fatal and Fatalf log, then exit the process with status 1.
func (l *DefaultLogger) Fatal(v ...any) { l.out("FATAL", fmt.Sprint(v...)); os.Exit(1) }
func (l *DefaultLogger) Fatalf(format string, v ...any) {
	l.out("FATAL", fmt.Sprintf(format, v...))
	os.Exit(1)
}

// Panic and Panicf log, then panic with the message.
func (l *DefaultLogger) Panic(v ...any) {
	msg := fmt.Sprint(v...)
	l.out("PANIC", msg)
	panic(msg)
}

func (l *DefaultLogger) Panicf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.out("PANIC", msg)
	panic(msg)
}

// discardLogger is the Logger of a database opened without one.
type discardLogger struct{}

func (discardLogger) Debug(...any)                   {}
func (discardLogger) Debugf(string, ...any)          {}
func (discardLogger) Error(...any)                   {}
func (discardLogger) Errorf(string, ...any)          {}
func (discardLogger) Info(...any)                    {}
func (discardLogger) Infof(string, ...any)           {}
func (discardLogger) Warning(...any)                 {}
func (discardLogger) Warningf(string, ...any)        {}
func (discardLogger) Fatal(v ...any)                 { os.Exit(1) }
func (discardLogger) Fatalf(string, ...any)          { os.Exit(1) }
func (discardLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }

// Logger returns the database's logger: Options.Logger, or one that
// discards.
func (db *DB) Logger() Logger {
	if db == nil || db.logger == nil {
		return discardLogger{}
	}
	return db.logger
}
