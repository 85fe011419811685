"""Click only: parse options, call one ops function, print its report, return an exit code."""
