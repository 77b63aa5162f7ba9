"""Hypothesis strategies for decision inputs, shared by the core's property tests
(``tests/core/test_invariants.py``) and the fail-closed reliability tests
(``tests/reliability/test_fail_closed_decisions.py``, ``test_fail_closed_store_faults.py``).

Both draw from the same vocabulary — the three modes, the built-in registry's runtimes, model
ids, rule spellings and credential names — mixed with noise, in two strengths:

- **everyday** (``resolution_inputs``, ``registries``): case changes, white space (ASCII and a
  few Unicode spaces, plus U+200B, which is not white space), a typo, random text. The core's
  invariant tests.
- **hostile** (``hostile_resolution_inputs``, ``registry_pairs``, ``policies``): every white
  space ``str.strip`` removes, characters that look blank but are not, homoglyphs, NUL and
  combining marks, harsher garbling, random secret names, and every valid policy. The
  fail-closed property over the whole input space; ``stored_states`` draws a workspace as a
  store holds it, for the fault tests.

Beside them, what the draws are checked against and computed here independently of the core:
``DECIDING_RUNG`` and ``normalized_org_default`` (spec §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import llmbilling
from llmbilling.config.registry import built_in_registry, load_registry
from llmbilling.core.decision import OverrideReadFailure, ResolutionInput
from llmbilling.core.modes import MODE_VALUES, RungName
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy, compile_policy

BUILT_IN = built_in_registry()
# The same file compiled again: a distinct object, so no memo can make two calls agree.
BUILT_IN_TWIN = load_registry(Path(llmbilling.__file__).parent / "data" / "registry.yaml")

# The rung of the trace that decides, for each decision source.
DECIDING_RUNG = {
    "workspace_override": "workspace_override",
    "org_default": "org_default",
    "derived_provider": "derived_provider",
    "derived_default": "deployment_default",
    "constant_fallback": "deployment_default",
}


def normalized_org_default(raw: str | None) -> str | None:
    """Spec §2 rung 2, computed here independently: trim ASCII white space, lowercase ASCII
    letters (anything else stays, so a look-alike or a control character is never a mode)."""
    if raw is None:
        return None
    text = raw.strip(" \t\n\r\v\f")
    text = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    return text if text in MODE_VALUES else None


# --- words and ways to spoil them ------------------------------------------------------------

# White space as str.strip() sees it (ASCII, separators, Unicode spaces) ...
WHITE_SPACE = (
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# ... and characters that look blank but are not white space: they must survive trimming.
LOOKS_BLANK = "\u200b\u200c\u200d\u2060\ufeff\u00ad\x00\u034f"

# Everyday: white space as str.strip() sees it, plus U+200B (not white space).
noise = st.text(
    alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x85\u00a0\u2003\u2028\u3000\u200b"), max_size=3
)
hostile_noise = st.text(alphabet=st.sampled_from(WHITE_SPACE + LOOKS_BLANK), max_size=3)

# Lookalikes of the letters of the modes. Some lowercase onto ASCII (KELVIN SIGN → "k"), most
# do not; the spec's normalization (trim, lowercase) decides, and the tests compute it.
HOMOGLYPHS = {
    "a": "\u0430\u03b1A",
    "b": "\u0432\u13cfB",
    "d": "\u0501D",
    "e": "\u0435\u03b5E",
    "g": "\u0261G",
    "i": "\u0456\u0131\u0130I1",
    "k": "\u212a\u03baK",
    "l": "\u04cf1L",
    "m": "\u043cM",
    "n": "\u043fN",
    "o": "\u043e\u03bf0O",
    "p": "\u0440\u03c1P",
    "r": "\u0433R",
    "s": "\u0455S",
    "t": "\u0442T",
    "y": "\u0443Y",
    "_": "-\u2010 .",
}
HOSTILE_JUNK = st.text(max_size=2) | st.sampled_from(["\x00", "\u0301", "\ufffd", "%00", "'"])


@st.composite
def cased(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if flip else c for c, flip in zip(word, flips, strict=True))


def _garble(draw: st.DrawFn, word: str, junk: st.SearchStrategy[str], max_cut: int) -> str:
    at = draw(st.integers(min_value=0, max_value=len(word)))
    inserted = draw(junk)
    cut = draw(st.integers(min_value=0, max_value=max_cut))
    return word[:at] + inserted + word[at + cut :]


@st.composite
def garbled(draw: st.DrawFn, word: str) -> str:
    """A typo: up to two random characters in, up to one out."""
    return _garble(draw, word, st.text(max_size=2), 1)


@st.composite
def badly_garbled(draw: st.DrawFn, word: str) -> str:
    """Random text or NUL, a combining mark, U+FFFD, ``%00`` or a quote in; up to two out."""
    return _garble(draw, word, HOSTILE_JUNK, 2)


@st.composite
def homoglyphed(draw: st.DrawFn, word: str) -> str:
    at = draw(st.integers(min_value=0, max_value=len(word) - 1))
    lookalikes = HOMOGLYPHS.get(word[at].lower(), "")
    if not lookalikes:
        return word
    return word[:at] + draw(st.sampled_from(lookalikes)) + word[at + 1 :]


def padded(
    words: st.SearchStrategy[str], around: st.SearchStrategy[str] = noise
) -> st.SearchStrategy[str]:
    """``words`` with ``around`` (everyday noise by default) before and after."""
    return st.builds(lambda pre, word, post: pre + word + post, around, words, around)


mode_word = st.sampled_from(MODE_VALUES)
known_model = st.sampled_from(
    sorted(
        {
            *(key for table in BUILT_IN.tables.values() for key in (*table.exact, *table.prefixes)),
            *(
                candidate.rule
                for table in BUILT_IN.tables.values()
                for match in table.exact.values()
                for candidate in match.candidates
            ),
        }
    )
)
known_runtime = st.sampled_from(sorted(BUILT_IN.runtimes))

# --- everyday decision inputs ----------------------------------------------------------------

mode_like_text = st.one_of(
    mode_word,
    padded(mode_word.flatmap(cased)),
    mode_word.flatmap(garbled),
    noise,
    st.text(max_size=20),
)
model_text = st.one_of(
    st.none(),
    known_model,
    padded(known_model.flatmap(cased)),
    st.builds(lambda key, tail: key + tail, known_model, st.text(max_size=8)),
    st.builds(
        lambda ns, tail: ns + tail,
        st.sampled_from(["platform/", "platform:", "PLATFORM/"]),
        st.text(max_size=8),
    ),
    known_model.flatmap(garbled),
    st.text(max_size=20),
)
runtime_text = st.one_of(
    st.none(),
    known_runtime,
    padded(known_runtime.flatmap(cased)),
    st.sampled_from(["*", "", "nosuchruntime"]),
    st.text(max_size=12),
)
auth_env_names = st.frozensets(
    st.one_of(
        st.sampled_from(sorted(BUILT_IN.all_auth_env | {"CLAUDE_CODE_OAUTH_TOKEN"})),
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True),
    ),
    max_size=4,
)
override_value = st.one_of(
    st.none(), mode_like_text, st.builds(OverrideReadFailure, st.text(max_size=20))
)
workspace_ids = st.one_of(st.none(), st.just(""), st.uuids().map(str), st.text(max_size=12))
resolution_inputs = st.builds(
    ResolutionInput,
    workspace_id=workspace_ids,
    override=override_value,
    org_default=st.one_of(st.none(), mode_like_text),
    runtime=runtime_text,
    model=model_text,
    auth_env=auth_env_names,
    proxy_configured=st.booleans(),
)
# The built-in registry, or none (unavailable).
registries = st.sampled_from([None, BUILT_IN])

# --- hostile decision inputs -----------------------------------------------------------------

hostile_mode_like_text = st.one_of(
    mode_word,
    padded(mode_word.flatmap(cased), hostile_noise),
    mode_word.flatmap(homoglyphed),
    padded(mode_word.flatmap(homoglyphed), hostile_noise),
    mode_word.flatmap(badly_garbled),
    hostile_noise,
    st.text(max_size=24),
)
NAMESPACES = ["platform/", "platform:", "PLATFORM/", " platform:", "platform /", "platform\\"]
hostile_model_text = st.one_of(
    st.none(),
    st.just(""),
    known_model,
    padded(known_model.flatmap(cased), hostile_noise),
    st.builds(lambda key, tail: key + tail, known_model, st.text(max_size=8)),
    st.builds(lambda ns, tail: ns + tail, st.sampled_from(NAMESPACES), st.text(max_size=8)),
    known_model.flatmap(badly_garbled),
    known_model.flatmap(homoglyphed),
    st.text(max_size=30),
)
hostile_runtime_text = st.one_of(
    st.none(),
    known_runtime,
    padded(known_runtime.flatmap(cased), hostile_noise),
    known_runtime.flatmap(badly_garbled),
    st.sampled_from(["*", "", " ", "nosuchruntime", "claude_code"]),
    st.text(max_size=16),
)

# Names a tenant can store: the platform's own namespace (MOLECULE_LLM_*) is refused on write.
credential_name = st.sampled_from(sorted(BUILT_IN.vendor_auth_env | {"CLAUDE_CODE_OAUTH_TOKEN"}))
secret_name = st.one_of(
    credential_name,
    credential_name.map(str.lower),
    padded(credential_name, hostile_noise),
    st.from_regex(r"[A-Z_][A-Z0-9_]{0,16}", fullmatch=True),
    st.text(max_size=12),
)
secret_names = st.frozensets(secret_name, max_size=6)

hostile_workspace_ids = st.one_of(
    st.none(), st.just(""), st.just(" "), st.uuids().map(str), st.text(max_size=12)
)
hostile_override_value = st.one_of(
    st.none(),
    hostile_mode_like_text,
    st.builds(OverrideReadFailure, st.text(max_size=30)),
)
hostile_resolution_inputs = st.builds(
    ResolutionInput,
    workspace_id=hostile_workspace_ids,
    override=hostile_override_value,
    org_default=st.one_of(st.none(), hostile_mode_like_text),
    runtime=hostile_runtime_text,
    model=hostile_model_text,
    auth_env=secret_names,
    proxy_configured=st.booleans(),
)
# (registry, the same registry compiled again), or none at all (unavailable).
registry_pairs = st.sampled_from([(None, None), (BUILT_IN, BUILT_IN_TWIN)])

# --- every valid policy ----------------------------------------------------------------------

PolicyTriple = tuple[dict[str, Any], CompiledPolicy, CompiledPolicy]


def _all_valid_policies() -> list[PolicyTriple]:
    """(document, compiled, compiled again) for every valid chain: any order of any subset of
    the three deciding rungs, then the deployment default; with and without the option."""
    first_three = [
        RungName.WORKSPACE_OVERRIDE.value,
        RungName.ORG_DEFAULT.value,
        RungName.DERIVED_PROVIDER.value,
    ]
    chains: list[list[str]] = [[]]
    for _ in first_three:
        chains += [[*chain, rung] for chain in chains for rung in first_three if rung not in chain]
    unique = {tuple(chain) for chain in chains}
    found = []
    for chain in sorted(unique):
        rungs = [*chain, RungName.DEPLOYMENT_DEFAULT.value]
        options = [False]
        if {"org_default", "derived_provider"} <= set(chain) and chain.index(
            "org_default"
        ) < chain.index("derived_provider"):
            options.append(True)
        for own_key in options:
            document = {
                "schema_version": 1,
                "rungs": rungs,
                "options": {"own_key_wins_over_org_default": own_key},
            }
            found.append(
                (
                    document,
                    compile_policy(document, "<drawn policy>"),
                    compile_policy(document, "<drawn policy, again>"),
                )
            )
    return found


ALL_POLICIES = _all_valid_policies()
CONTRACT: PolicyTriple = (CONTRACT_POLICY.to_document(), CONTRACT_POLICY, CONTRACT_POLICY)
# Half the draws use the contract's policy, the rest any valid one.
policies = st.one_of(st.just(CONTRACT), st.sampled_from(ALL_POLICIES))

# --- a workspace as a store holds it ---------------------------------------------------------


@dataclass(frozen=True)
class StoredState:
    """One workspace as stored, and the deployment it is decided under."""

    override: str | None
    org_default: str | None
    runtime: str
    model: str | None
    model_secret: str | None
    credentials: frozenset[str]
    proxy_configured: bool
    deployment_org_default: str | None


# Stored text: any text a tool could write (valid UTF-8; PostgreSQL text cannot hold NUL).
stored_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
stored_mode_like = hostile_mode_like_text.map(lambda text: text.replace("\x00", ""))
# A model column another tool left blank in a way SQL's trim() does not see.
white_space_only = st.text(alphabet=st.sampled_from(WHITE_SPACE), min_size=1, max_size=3)


def _model_secret(model: str | None) -> st.SearchStrategy[str | None]:
    # Only a workspace without a model reads a MODEL secret; row faults need one to damage.
    if model is not None and model.strip():
        return st.none()
    return st.one_of(
        known_model, hostile_model_text.filter(lambda m: m is not None and "\x00" not in m)
    )


stored_states = st.builds(
    lambda override, org_default, runtime, model_pair, credentials, proxy, deployment: StoredState(
        override=override,
        org_default=org_default,
        runtime=runtime,
        model=model_pair[0],
        model_secret=model_pair[1],
        credentials=credentials,
        proxy_configured=proxy,
        deployment_org_default=deployment,
    ),
    # The column has a CHECK: only the three modes or NULL can be stored.
    override=st.one_of(st.none(), mode_word),
    org_default=st.one_of(st.none(), stored_mode_like),
    runtime=st.one_of(known_runtime, stored_text.filter(lambda text: text.strip() != "")),
    model_pair=st.one_of(st.none(), known_model, stored_text, white_space_only).flatmap(
        lambda model: st.tuples(st.just(model), _model_secret(model))
    ),
    credentials=st.frozensets(credential_name, max_size=3),
    proxy=st.booleans(),
    deployment=st.one_of(st.none(), stored_mode_like),
)
