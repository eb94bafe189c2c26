// Package motopatch holds the Python patches that make moto_server behave
// like AWS where our tests depend on it, and starts them.
//
// sitecustomize.py is written to a folder that is put on moto_server's
// PYTHONPATH; Python runs it at start-up, and each patch is applied when its
// environment variable is "1" and then prints a marker line. Launchers pass
// the patches they want to Env and check the server's output with Check, so
// a shadowed or broken sitecustomize fails the start instead of silently
// testing plain moto. Both the moto launcher of internal/testenv and the
// chaos harness use it.
package motopatch
