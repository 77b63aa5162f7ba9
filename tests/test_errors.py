"""The one error module (``llmbilling/errors.py``): its closed set of codes, its families, and
the adapters' tables (``cli/app.py`` ``EXIT_CODES``, ``api/problems.py`` ``STATUS_BY_ERROR``).

The rule: every exception llmbilling raises on purpose is defined in ``llmbilling.errors`` and
derives from ``LlmBillingError``. A module may keep a private helper exception only if it never
escapes the module that converts it into a typed error or an answer; those are listed in
``CONVERTED_HELPERS`` with the place that converts them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

import llmbilling
from llmbilling import errors
from llmbilling.api.problems import STATUS_BY_ERROR, problem_body, status_for
from llmbilling.cli.app import EXIT_CODES, exit_code_for
from llmbilling.core.decision import OverrideReadFailure, ResolutionInput
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.errors import (
    ErrorCode,
    InvalidInputError,
    LlmBillingError,
    NotFoundError,
)

PACKAGE = Path(llmbilling.__file__).parent

# Codes no error class carries: they travel beside a decision, or are an adapter's own answer.
CODES_OF_NO_ERROR_CLASS = {
    ErrorCode.OVERRIDE_READ_FAILED: "decision record (core/rungs.py)",
    ErrorCode.REGISTRY_UNAVAILABLE: "decision record (core/rungs.py)",
    ErrorCode.INTERNAL_ERROR: "an unexpected fault (api/app.py 500, a failed what-if job)",
    ErrorCode.REQUEST_TOO_LARGE: "api/limits.py, a body refused before it is parsed (413)",
    ErrorCode.HEADERS_TOO_LARGE: "api/limits.py, a head refused by the HTTP protocol (431)",
    ErrorCode.WHATIF_INTERRUPTED: "a what-if job whose worker stopped on its last attempt",
}

# Exceptions defined outside errors.py, each converted before it can escape.
CONVERTED_HELPERS = {
    # tests/core/test_registry.py: a bad pattern is a RegistryError naming the provider.
    ("core/patterns.py", "PatternError"): "core/registry.py turns it into a RegistryError",
    ("api/console/guard.py", "NotSignedInError"): "ConsoleRoute: a redirect to the login form",
    ("api/console/guard.py", "PageNotFoundError"): "ConsoleRoute: the 404 page",
    ("api/console/guard.py", "WriteForbiddenError"): "ConsoleRoute: the 403 page",
    ("api/console/guard.py", "CrossSiteRequestError"): "ConsoleRoute: the 403 page",
    ("service/whatif_jobs.py", "WorkerStoppedError"): "WhatIfJobs._run: the job is requeued",
}

# Every error class with its CLI exit status and HTTP status, as documented (docs/STORAGE.md
# for the exit statuses, api/problems.py's descriptions for the HTTP ones).
EXPECTED: dict[type[LlmBillingError], tuple[int, int]] = {
    errors.LlmBillingError: (1, 500),
    errors.InvalidInputError: (2, 400),
    errors.ProposalInvalidError: (2, 422),
    errors.DocumentError: (2, 503),
    errors.RegistryError: (2, 503),
    errors.PolicyError: (2, 503),
    errors.EnvValueUnrepresentableError: (2, 400),
    errors.UnauthenticatedError: (1, 401),
    errors.ForbiddenError: (1, 403),
    errors.NotFoundError: (6, 404),
    errors.WorkspaceNotFoundError: (6, 404),
    errors.OrgNotFoundError: (6, 404),
    errors.TokenNotFoundError: (6, 404),
    errors.WhatIfJobNotFoundError: (6, 404),
    errors.PlanNotFoundError: (6, 404),
    errors.RouteNotFoundError: (6, 404),
    errors.MethodNotAllowedError: (1, 405),
    errors.ConflictError: (1, 409),
    errors.AlreadyExistsError: (1, 409),
    errors.PreconditionFailedError: (1, 412),
    errors.ChangeConflictError: (1, 409),
    errors.PlanStaleError: (1, 409),
    errors.PlanExpiredError: (1, 409),
    errors.PlanAlreadyAppliedError: (1, 409),
    errors.PlanNeedsApprovalError: (1, 409),
    errors.PlanSelfApprovalError: (1, 409),
    errors.PlanNotDeployedError: (1, 409),
    errors.PlanNeedsSecretValueError: (1, 409),
    errors.DangerNotAcknowledgedError: (1, 409),
    errors.TooManyRequestsError: (1, 429),
    errors.WhatIfQuotaExceededError: (1, 429),
    errors.WhatIfRateLimitedError: (1, 429),
    errors.ProvisionError: (1, 409),
    errors.MissingModelError: (3, 422),
    errors.MissingPlatformProxyError: (4, 409),
    errors.MissingByokCredentialError: (5, 409),
    errors.StoreError: (7, 503),
    errors.StoreUnavailableError: (7, 503),
    errors.DatabaseNotFoundError: (7, 503),
    errors.SchemaNotCurrentError: (8, 503),
    errors.SecretsError: (9, 500),
    errors.KeyRingError: (9, 500),
    errors.UnknownKeyVersionError: (9, 500),
    errors.SecretDecryptionError: (9, 500),
    errors.KeyRingMismatchError: (9, 500),
    errors.KeyFingerprintMismatchError: (9, 500),
}


def _error_classes() -> list[type[LlmBillingError]]:
    return [
        value
        for value in vars(errors).values()
        if inspect.isclass(value)
        and issubclass(value, LlmBillingError)
        and value.__module__ == errors.__name__
    ]


ERROR_CLASSES = _error_classes()
# A class naming its own code is raised as itself; one that does not is a family only.
CONCRETE = [cls for cls in ERROR_CLASSES if "code" in vars(cls)]
FAMILIES = [cls for cls in ERROR_CLASSES if "code" not in vars(cls)]


def _name(cls: type) -> str:
    return cls.__name__


# --- the closed set of codes -------------------------------------------------------------------


def test_every_exception_of_the_module_derives_from_the_base() -> None:
    exceptions = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    assert exceptions == ERROR_CLASSES


def test_every_code_is_carried_by_exactly_one_error_class_or_named_as_of_none() -> None:
    carriers: dict[ErrorCode, list[str]] = {}
    for cls in CONCRETE:
        carriers.setdefault(vars(cls)["code"], []).append(cls.__name__)
    assert {code: names for code, names in carriers.items() if len(names) != 1} == {}
    assert not set(carriers) & set(CODES_OF_NO_ERROR_CLASS)
    assert set(carriers) | set(CODES_OF_NO_ERROR_CLASS) == set(ErrorCode)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=_name)
def test_every_error_code_is_an_error_code_member(cls: type[LlmBillingError]) -> None:
    assert type(cls.code) is ErrorCode


def test_a_family_without_a_code_of_its_own_has_members() -> None:
    assert FAMILIES, "the families are classes that name no code of their own"
    for family in FAMILIES:
        assert family.__subclasses__(), family


def test_the_wire_carries_each_code_as_its_plain_value() -> None:
    assert all(code.value == code.name for code in ErrorCode)
    assert json.dumps(list(ErrorCode)) == json.dumps([code.name for code in ErrorCode])
    error = InvalidInputError("mode", "is not a mode", ["byok"])
    assert [type(value) for value in error.to_dict().values()] == [str, str, str]
    assert type(problem_body(400, error.code, error.message)["code"]) is str


def test_the_decision_record_carries_its_codes_as_members_and_plain_strings() -> None:
    decision = resolve_billing_mode(
        ResolutionInput(workspace_id="w", override=OverrideReadFailure("down")), None
    )
    assert decision.error is not None
    assert decision.error.code is ErrorCode.OVERRIDE_READ_FAILED
    record = decision.to_dict()
    assert type(record["error"]["code"]) is str
    assert record["error"]["code"] == "OVERRIDE_READ_FAILED"


def test_no_error_class_carries_an_exit_code() -> None:
    assert [cls for cls in ERROR_CLASSES if hasattr(cls, "exit_code")] == []


# --- one module --------------------------------------------------------------------------------


def _classes_outside_errors() -> list[tuple[str, str, ast.ClassDef, bool]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "errors.py" or relative.startswith("store/migrations/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.bases:
                found.append((relative, node.name, node, id(node) in top_level))
    return found


def _is_exception(relative: str, name: str, node: ast.ClassDef, top_level: bool) -> bool:
    if top_level:
        module_name = "llmbilling." + relative.removesuffix(".py").replace("/", ".")
        cls = getattr(importlib.import_module(module_name), name)
        return inspect.isclass(cls) and issubclass(cls, BaseException)
    # A nested class cannot be imported: judge it by its bases' names.
    return any(
        isinstance(base, ast.Name) and base.id.endswith(("Error", "Exception"))
        for base in node.bases
    )


def test_only_errors_py_defines_exceptions_but_the_converted_helpers() -> None:
    defined = {
        (relative, name)
        for relative, name, node, top_level in _classes_outside_errors()
        if _is_exception(relative, name, node, top_level)
    }
    assert defined == set(CONVERTED_HELPERS)


@pytest.mark.parametrize(("where", "name"), sorted(CONVERTED_HELPERS))
def test_a_converted_helper_is_no_llmbilling_error(where: str, name: str) -> None:
    module = importlib.import_module("llmbilling." + where.removesuffix(".py").replace("/", "."))
    assert not issubclass(getattr(module, name), LlmBillingError)


# --- the adapters' tables ----------------------------------------------------------------------


def test_the_expected_table_names_every_error_class() -> None:
    assert set(EXPECTED) == set(ERROR_CLASSES)


def test_the_tables_name_only_error_classes_of_the_one_module() -> None:
    assert set(EXIT_CODES) <= set(ERROR_CLASSES)
    assert set(STATUS_BY_ERROR) <= set(ERROR_CLASSES)
    assert LlmBillingError in EXIT_CODES
    assert LlmBillingError in STATUS_BY_ERROR


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=_name)
def test_every_error_maps_to_its_exit_code_and_status(cls: type[LlmBillingError]) -> None:
    assert (exit_code_for(cls), status_for(cls)) == EXPECTED[cls]


@pytest.mark.parametrize("cls", NotFoundError.__subclasses__(), ids=_name)
def test_the_not_found_family_answers_404_and_exits_6(cls: type[NotFoundError]) -> None:
    assert (status_for(cls), exit_code_for(cls)) == (404, 6)


def test_a_new_member_of_a_family_answers_as_its_family() -> None:
    class GadgetNotFoundError(NotFoundError):
        code = ErrorCode.NOT_FOUND

    class GadgetStoreError(errors.StoreError):
        code = ErrorCode.STORE_UNAVAILABLE

    assert (status_for(GadgetNotFoundError), exit_code_for(GadgetNotFoundError)) == (404, 6)
    assert (status_for(GadgetStoreError), exit_code_for(GadgetStoreError)) == (503, 7)
