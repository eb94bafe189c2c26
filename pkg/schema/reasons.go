package schema

import "errors"

// Reasons returns the reasons to store with a rejected record: each problem
// of an *InvalidError, or the error's text for any other error.
func Reasons(err error) []string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reasons()
	}
	return []string{err.Error()}
}
