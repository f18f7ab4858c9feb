// Package locustbin finds the real Locust masters the tests run against:
// Debian's Locust 2.12.1 (DIFYLOAD_LOCUST_2_12, default /usr/bin/locust) and
// the newest Debian Locust in a chroot (DIFYLOAD_LOCUST_LATEST, default the
// repository's scripts/locust-latest.sh). A test that cannot find one skips,
// except in CI (CI=true), where it fails: a CI run that silently tests nothing
// is a broken run.
package locustbin
