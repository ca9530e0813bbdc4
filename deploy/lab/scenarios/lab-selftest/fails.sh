# Reports one pass and one deliberate failure: the host must count both and exit non-zero.
pass reported-before-failing
fail deliberate-failure "this scenario fails on purpose"
