"""EmbeddedBackend on a real SQLite file (no Django database involved)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from search.backends import embedded
from search.backends.base import IndexError_
from search.backends.embedded import EmbeddedBackend, fts_queries

ROOT = Path(__file__).resolve().parents[2]
BIG_SHOPIFY_ID = 788032119674292922  # above 2**53: must not pass through a float


def make_doc(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": doc_id,
        "shop": "alpha.myshopify.com",
        "shopify_id": int(doc_id),
        "handle": f"product-{doc_id}",
        "title": "Plain thing",
        "description": "Nothing to see here.",
        "vendor": "Acme",
        "product_type": "Misc",
        "tags": [],
        "status": "active",
        "price_min": 9.5,
        "price_max": 12.0,
        "updated_at": "2024-05-01T10:00:00+00:00",
        "inventory_total": 3,
        **fields,
    }


def ids(hits: list[Any]) -> list[str]:
    return [hit.id for hit in hits]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "index.sqlite3"


@pytest.fixture
def backend(path: Path) -> Any:
    backend = EmbeddedBackend("embedded", {"PATH": str(path)})
    yield backend
    backend.close()


# --- storage ------------------------------------------------------------------------------------


def test_put_get_round_trip_keeps_big_ints_exact(backend: EmbeddedBackend, path: Path) -> None:
    doc = make_doc("1", shopify_id=BIG_SHOPIFY_ID, tags=["Summer", "Sale"], price_min=None)
    backend.put(doc)
    stored = backend.get("1")
    assert stored == doc
    assert stored["shopify_id"] == BIG_SHOPIFY_ID and isinstance(stored["shopify_id"], int)
    assert path.exists()  # parent directories were created


def test_put_replaces_the_whole_document(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Wool scarf", inventory_total=5))
    replacement = make_doc("1", title="Silk tie")
    del replacement["inventory_total"]
    backend.put(replacement)
    assert backend.get("1") == replacement
    assert backend.count() == 1
    assert backend.search("scarf") == []
    assert ids(backend.search("tie")) == ["1"]


def test_get_missing_is_none(backend: EmbeddedBackend) -> None:
    assert backend.get("404") is None


def test_update_assigns_only_given_fields(backend: EmbeddedBackend) -> None:
    doc = make_doc("1", title="Wool scarf", shopify_id=BIG_SHOPIFY_ID)
    backend.put(doc)
    assert backend.update("1", {"inventory_total": 0, "price_min": 7.0}) is True
    assert backend.get("1") == {**doc, "inventory_total": 0, "price_min": 7.0}
    assert ids(backend.search("scarf")) == ["1"]  # text untouched by a non-text update


def test_update_of_title_is_searchable_under_new_word_only(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Wool scarf"))
    assert backend.update("1", {"title": "Cashmere shawl"}) is True
    assert ids(backend.search("shawl")) == ["1"]
    assert backend.search("scarf") == []
    assert backend.get("1")["vendor"] == "Acme"


def test_update_of_status_moves_document_out_of_search(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Wool scarf"))
    backend.update("1", {"status": "archived"})
    assert backend.search("scarf") == []
    assert ids(backend.search("scarf", statuses=("archived",))) == ["1"]


def test_update_of_missing_document_creates_nothing(backend: EmbeddedBackend) -> None:
    assert backend.update("404", {"inventory_total": 1}) is False
    assert backend.get("404") is None
    assert backend.count() == 0


def test_update_with_same_values_is_a_no_op(backend: EmbeddedBackend) -> None:
    doc = make_doc("1")
    backend.put(doc)
    assert backend.update("1", {"title": doc["title"]}) is True
    assert backend.get("1") == doc


def test_update_may_not_change_the_id(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1"))
    with pytest.raises(IndexError_) as excinfo:
        backend.update("1", {"id": "2"})
    assert excinfo.value.retryable is False


def test_delete(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Wool scarf"))
    assert backend.delete("1") is True
    assert backend.get("1") is None
    assert backend.search("scarf") == []
    assert backend.delete("1") is False


def test_count_per_shop_and_clear(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1"))
    backend.put(make_doc("2"))
    backend.put(make_doc("3", shop="beta.myshopify.com"))
    assert backend.count() == 3
    assert backend.count(shop="alpha.myshopify.com") == 2
    assert backend.count(shop="beta.myshopify.com") == 1
    assert backend.count(shop="gamma.myshopify.com") == 0
    backend.clear()
    assert backend.count() == 0
    assert backend.search("plain") == []


# --- search -------------------------------------------------------------------------------------


@pytest.fixture
def catalog(backend: EmbeddedBackend) -> EmbeddedBackend:
    backend.put(make_doc("1", title="Clip-in Hair Extensions", vendor="Bellami", tags=["bestseller"]))
    backend.put(make_doc("2", title="Running Shoes", vendor="Nike", product_type="Footwear"))
    backend.put(make_doc("3", title="Leather Jacket", description="A jacket for running errands."))
    backend.put(make_doc("4", title="Draft Jacket", status="draft"))
    backend.put(make_doc("5", title="Old Jacket", status="archived"))
    backend.put(make_doc("6", title="Denim Jacket", shop="beta.myshopify.com"))
    return backend


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("shoes", ["2"]),  # title word
        ("nike", ["2"]),  # vendor
        ("footwear", ["2"]),  # product type
        ("bestseller", ["1"]),  # tag
        ("extension", ["1"]),  # porter stemming: extension ~ Extensions
        ("HAIR", ["1"]),  # case-insensitive
        ("leather jack", ["3"]),  # the last term is a prefix
        ("clip in", ["1"]),  # "Clip-in" is tokenized into clip + in
    ],
)
def test_search_finds(catalog: EmbeddedBackend, query: str, expected: list[str]) -> None:
    assert ids(catalog.search(query, shop="alpha.myshopify.com")) == expected


def test_search_hits_carry_document_and_positive_score(catalog: EmbeddedBackend) -> None:
    [hit] = catalog.search("nike")
    assert hit.document == catalog.get("2")
    assert hit.score > 0


def test_search_requires_all_terms_before_falling_back_to_any(catalog: EmbeddedBackend) -> None:
    assert ids(catalog.search("leather jacket")) == ["3"]
    # No document has both words: any word will do, best first.
    assert ids(catalog.search("nike scarves")) == ["2"]
    assert set(ids(catalog.search("nike leather"))) == {"2", "3"}


def test_search_prefix_only_on_last_term(catalog: EmbeddedBackend) -> None:
    # "jack" is no prefix when not last: no document has both words, and the any-word fallback
    # finds only the shoes.
    assert ids(catalog.search("jack shoes")) == ["2"]
    assert catalog.search("jack ") == []  # a trailing space ends the word
    assert set(ids(catalog.search("jack", shop="alpha.myshopify.com"))) == {"3"}


def test_search_returns_only_active_by_default(catalog: EmbeddedBackend) -> None:
    assert ids(catalog.search("jacket", shop="alpha.myshopify.com")) == ["3"]
    assert ids(catalog.search("jacket", statuses=("draft",))) == ["4"]
    assert set(ids(catalog.search("jacket", statuses=("draft", "archived")))) == {"4", "5"}
    assert catalog.search("jacket", statuses=()) == []


def test_search_filters_by_shop(catalog: EmbeddedBackend) -> None:
    assert ids(catalog.search("denim")) == ["6"]
    assert catalog.search("denim", shop="alpha.myshopify.com") == []
    assert ids(catalog.search("jacket", shop="beta.myshopify.com")) == ["6"]
    assert set(ids(catalog.search("jacket"))) == {"3", "6"}


def test_search_respects_limit(catalog: EmbeddedBackend) -> None:
    assert len(catalog.search("jacket", limit=1)) == 1
    assert catalog.search("jacket", limit=0) == []


def test_title_match_outranks_description_match(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Travel mug", description="Keeps your lantern dry and warm."))
    backend.put(make_doc("2", title="Camping lantern", description="A bright light for the tent."))
    for n in range(3, 8):  # filler, so the term is not in most documents
        backend.put(make_doc(str(n), title=f"Filler {n}"))
    hits = backend.search("lantern")
    assert ids(hits) == ["2", "1"]
    assert hits[0].score > hits[1].score > 0


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "AND",
        "OR",
        "NOT",
        "c++",
        "16″",
        "-foo",
        "NEAR(",
        "NEAR(a b)",
        "*",
        "title:foo",
        '"unbalanced',
        "a AND",
        "(",
        ")",
        "^",
        'foo"bar',
        '""',
        "'",
        "+",
        "a OR OR b",
        "\\",
    ],
)
def test_hostile_queries_do_not_raise(catalog: EmbeddedBackend, query: str) -> None:
    assert isinstance(catalog.search(query), list)


def test_punctuated_queries_still_find_by_their_words(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="MacBook sleeve 16″", description="Written in C++ AND love"))
    assert ids(backend.search("16″")) == ["1"]
    assert ids(backend.search('16"')) == ["1"]
    assert ids(backend.search("c++")) == ["1"]
    assert ids(backend.search("AND")) == ["1"]  # a word, not an operator
    assert ids(backend.search("sleeve -foo")) == ["1"]  # -foo is no exclusion; OR fallback


@pytest.mark.parametrize("query", ["", "   ", "\t\n", '" " -', "*"])
def test_empty_query_returns_nothing(catalog: EmbeddedBackend, query: str) -> None:
    assert catalog.search(query) == []


def test_fts_queries_quote_every_word() -> None:
    assert fts_queries("") == []
    assert fts_queries("jack") == ['"jack"*']
    assert fts_queries("c++") == ['"c++"']  # ended with punctuation: no prefix
    assert fts_queries('red AND "16"') == ['"red" AND "AND" AND """16"""', '"red" OR "AND" OR """16"""']
    assert fts_queries("NEAR( shoe") == ['"NEAR(" AND "shoe"*', '"NEAR(" OR "shoe"*']


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {"title": "no id"},
        make_doc("1") | {"id": None},
        make_doc("1") | {"id": 1},
        make_doc("1") | {"tags": {object()}},
        make_doc("1") | {"price_min": object()},
    ],
)
def test_malformed_document_is_a_permanent_error(backend: EmbeddedBackend, document: dict) -> None:
    with pytest.raises(IndexError_) as excinfo:
        backend.put(document)
    assert excinfo.value.retryable is False
    assert backend.count() == 0


def test_non_serializable_update_writes_nothing(backend: EmbeddedBackend) -> None:
    doc = make_doc("1")
    backend.put(doc)
    with pytest.raises(IndexError_) as excinfo:
        backend.update("1", {"title": "New", "price_min": object()})
    assert excinfo.value.retryable is False
    assert backend.get("1") == doc
    assert backend.search("new") == []


def test_locked_database_is_a_retryable_error(path: Path) -> None:
    backend = EmbeddedBackend("embedded", {"PATH": str(path), "TIMEOUT": 0.05})
    backend.put(make_doc("1"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        with pytest.raises(IndexError_) as excinfo:
            backend.put(make_doc("2"))
        assert excinfo.value.retryable is True
        assert "locked" in str(excinfo.value)
        assert backend.get("1") is not None  # WAL: reads go on during the write
    finally:
        other.execute("ROLLBACK")
        other.close()
    backend.put(make_doc("2"))  # and the retry succeeds
    assert backend.count() == 2
    backend.close()


# --- connections and sharing --------------------------------------------------------------------


def test_schema_version_and_wal_mode(backend: EmbeddedBackend, path: Path) -> None:
    backend.count()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == embedded.SCHEMA_VERSION == 2
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_two_instances_on_one_file_see_each_others_writes(path: Path) -> None:
    writer = EmbeddedBackend("embedded", {"PATH": str(path)})
    reader = EmbeddedBackend("embedded", {"PATH": str(path)})
    try:
        assert reader.count() == 0  # reader connects before the writes
        writer.put(make_doc("1", title="Wool scarf"))
        assert ids(reader.search("scarf")) == ["1"]
        reader.update("1", {"title": "Silk scarf"})
        assert writer.get("1")["title"] == "Silk scarf"
        reader.delete("1")
        assert writer.count() == 0
    finally:
        writer.close()
        reader.close()


def test_another_process_sees_writes(backend: EmbeddedBackend, path: Path) -> None:
    backend.put(make_doc("1", title="Wool scarf"))
    script = (
        "import sys; from search.backends.embedded import EmbeddedBackend as B; "
        "b = B('embedded', {'PATH': sys.argv[1]}); "
        "print(b.search('scarf')[0].id); b.put({'id': '2', 'title': 'Wool hat', 'status': 'active'})"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "1"
    assert backend.get("2")["title"] == "Wool hat"


def test_close_then_reuse(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Wool scarf"))
    backend.close()
    backend.close()  # closing twice is harmless
    assert ids(backend.search("scarf")) == ["1"]
    backend.put(make_doc("2"))
    assert backend.count() == 2


def test_each_thread_uses_its_own_connection(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Wool scarf"))
    results: list[Any] = []

    def work() -> None:
        results.append(ids(backend.search("scarf")))
        backend.put(make_doc("2", title="Wool hat"))
        backend.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == [["1"]]
    assert backend.count() == 2


def test_memory_path_is_refused() -> None:
    with pytest.raises(ValueError):
        EmbeddedBackend("embedded", {"PATH": ":memory:"})


# --- ranking on a catalog of look-alike products ------------------------------------------------
#
# In a specialist shop most products share the words shoppers type: here "curly" and "wig" are each
# in 9 of 12 documents. FTS5's bm25() gives a word in more than half the documents an IDF of 1e-6,
# so they stopped counting; the ranking must still weigh them, title first.

LONG_DESCRIPTION = (
    "Hand-tied lace with a pre-plucked hairline and bleached knots; adjustable straps and combs keep "
    "it secure all day. Made of human hair that can be dyed, bleached and heat styled, with a full "
    "density, no tangles and minimal shedding. Ships in two business days from our own warehouse."
)


@pytest.fixture
def wig_shop(backend: EmbeddedBackend) -> EmbeddedBackend:
    for doc in [
        make_doc("1", title="Ophelia Kinky Curly Wig", description=LONG_DESCRIPTION, product_type="Units"),
        # "curly" in title, tags and type, "wig" only in the description: not a wig.
        make_doc(
            "2",
            title="Mongolian Loose Curly Frontal 13x4",
            tags=["curly", "frontal"],
            product_type="Loose Curly",
            description="Sew it in, or build your own wig with it.",
        ),
        make_doc("3", title="Kinky Straight Closure", tags=["curly", "wig"]),
        make_doc("4", title="Body Wave Bundles", description="Wear it curly, or under a wig."),
        make_doc("5", title="Deep Wave Lace Wig", tags=["curly"]),
        make_doc("6", title="Water Wave Curly Bundles", description="Pairs with any wig."),
        make_doc("7", title="Straight Bob Wig", description="Not curly at all."),
        make_doc("8", title="Curly Clip-In Extensions", tags=["wig"]),
        make_doc("9", title="Glueless Lace Wig", product_type="Curly"),
        make_doc("10", title="Silky Straight Bundles", description="Ombre tones, dark roots to honey ends."),
        make_doc("11", title="Yaki Ponytail"),
        make_doc("12", title="Silk Press Kit"),
    ]:
        backend.put(doc)
    return backend


def test_common_words_still_count_title_first(wig_shop: EmbeddedBackend) -> None:
    hits = wig_shop.search("curly wig", limit=20)
    ranked = ids(hits)
    assert sorted(ranked, key=int) == [str(n) for n in range(1, 10)]  # every document with both
    assert ranked[0] == "1"  # both words in the title
    # Both words only in tags, or only in the description, rank below it; repeating "curly" in
    # title, tags and type does not make up for "wig" being only in the description.
    assert ranked.index("1") < ranked.index("3")
    assert ranked.index("1") < ranked.index("4")
    assert ranked.index("5") < ranked.index("2")
    assert ranked.index("9") < ranked.index("2")
    assert ranked[-1] == "4"  # both words, but only in passing
    assert all(hit.score > 0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_any_word_fallback_ranks_documents_matching_more_words_first(wig_shop: EmbeddedBackend) -> None:
    # No product has all three words. "ombre" is rare (one description), "curly" and "wig" common;
    # a curly wig still beats a product that only mentions ombre in passing.
    ranked = ids(wig_shop.search("curly wig ombre", limit=20))
    assert "10" in ranked
    assert ranked[0] == "1"
    assert ranked.index("1") < ranked.index("10")


def test_a_word_in_every_document_still_counts(wig_shop: EmbeddedBackend) -> None:
    hits = wig_shop.search("acme")  # every vendor
    assert len(hits) == 10
    # ln(1 + 0.5 / 12.5) * weight 4: small but not the 1e-6 FTS5 would give it.
    assert all(hit.score > 0.1 for hit in hits)
    # Same vendor field, same length: equal scores, in document id order.
    assert len({hit.score for hit in hits}) == 1
    assert ids(hits) == sorted(ids(hits))
    assert ids(wig_shop.search("acme", limit=12)) == sorted(str(n) for n in range(1, 13))


def test_ties_break_by_document_id(backend: EmbeddedBackend) -> None:
    for doc_id in ("3", "1", "2"):  # stored in another order than their ids
        backend.put(make_doc(doc_id, title="Wool scarf"))
    hits = backend.search("scarf")
    assert ids(hits) == ["1", "2", "3"]
    assert hits[0].score == hits[1].score == hits[2].score > 0


def test_phrase_and_prefix_words_are_scored(backend: EmbeddedBackend) -> None:
    backend.put(make_doc("1", title="Cotton T-Shirt"))
    backend.put(make_doc("2", title="Shirt", description="Size T, in cotton."))  # t, shirt apart
    backend.put(make_doc("3", title="Plain T-Shirts", tags=["t-shirt"]))
    [first, second] = backend.search("t-shirt")
    assert {first.id, second.id} == {"1", "3"}
    assert first.score > 0 and second.score > 0
    assert first.id == "3"  # in title and tags
    assert ids(backend.search("t-shi")) == ["3", "1"]  # the phrase's last word as a prefix
    assert ids(backend.search("cott")) == ["1", "2"]  # title before description


def test_length_normalization_reads_long_columns(backend: EmbeddedBackend) -> None:
    # A description of more than 127 tokens has its length stored on two bytes.
    long_text = " ".join(["soft"] * 150) + " lantern"
    backend.put(make_doc("1", description=long_text))
    backend.put(make_doc("2", description="A lantern."))
    hits = backend.search("lantern")
    assert ids(hits) == ["2", "1"]  # the same match counts more in the shorter description
    assert hits[0].score > hits[1].score > 0


def test_scoring_prose_lazily_changes_nothing(wig_shop: EmbeddedBackend, monkeypatch: Any) -> None:
    # Prose is scored a few documents at a time, only while they could still make the cut.
    full = {query: wig_shop.search(query, limit=20) for query in ("curly wig", "curly wig ombre", "wig")}
    monkeypatch.setattr(embedded, "PROSE_BATCH", 1)
    for query, expected in full.items():
        for limit in (1, 2, 3, 5):
            hits = wig_shop.search(query, limit=limit)
            assert [(hit.id, hit.score) for hit in hits] == [(hit.id, hit.score) for hit in expected[:limit]]


def test_many_matches_are_cut_to_the_likeliest(wig_shop: EmbeddedBackend, monkeypatch: Any) -> None:
    monkeypatch.setattr(embedded, "MAX_SCORED_CANDIDATES", 3)
    # Every word in the title first: the one such product is kept, and still ranks first.
    hits = wig_shop.search("curly wig", limit=20)
    assert len(hits) == 3
    assert ids(hits)[0] == "1"
    assert all(hit.score > 0 for hit in hits)
    # The rest by bm25(): the any-word fallback has no all-words tier.
    assert len(wig_shop.search("curly wig ombre", limit=20)) == 3
    # Filters still apply to the cut.
    assert wig_shop.search("curly wig", statuses=("draft",)) == []
    assert wig_shop.search("curly wig", shop="beta.myshopify.com") == []


def test_search_goes_on_while_another_connection_writes(wig_shop: EmbeddedBackend, path: Path) -> None:
    # Ranking writes scratch tables, but only in its connection's temp schema: no lock on the file.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        other.execute("DELETE FROM documents")  # uncommitted: not seen
        assert ids(wig_shop.search("curly wig"))[0] == "1"
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_no_ranking_tables_in_the_file(wig_shop: EmbeddedBackend, path: Path) -> None:
    wig_shop.search("curly wig")
    conn = sqlite3.connect(path)
    try:
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert not any("candidate" in name or "query" in name or "vocab" in name for name in names)


def test_semantic_search_sees_writes_of_this_and_other_connections(tmp_path: Path) -> None:
    from tests.search.contract_ranking import seed, unit

    path = str(tmp_path / "shared.sqlite3")
    one, other = embedded.EmbeddedBackend("a", {"PATH": path}), embedded.EmbeddedBackend("b", {"PATH": path})
    seed(one, {"1": ("a", unit(1, 1), None)})
    assert [h.id for h in one.search("wig", mode="hybrid", query_vector=unit(1))] == ["1"]  # cached now
    seed(one, {"2": ("b", unit(1), None)})  # this connection's write
    assert [h.id for h in one.search("", mode="semantic", query_vector=unit(1))] == ["2", "1"]
    seed(other, {"3": ("c", unit(1, 0.01), None)})  # another connection's (another process's) write
    assert [h.id for h in one.search("", mode="semantic", query_vector=unit(1))] == ["2", "3", "1"]
    one.close()
    other.close()
