"""Pure planning: which images retention deletes, which instances a fleet selector picks, what coverage is
missing. No I/O."""
