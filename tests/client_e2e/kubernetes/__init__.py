"""Vendored from kubernetes-client/python (Apache-2.0, see LICENSE): only `e2e_test/`, at the path upstream
gives it, so that its relative paths (`kubernetes/e2e_test/test_yaml/...`) resolve from tests/client_e2e/."""
