"""Catalog: the metadata table of raw frames, queries on it, and downloads of its frames (`fetch`)."""

from temshift.catalog.catalog import Catalog
from temshift.catalog.columns import FIELDS, PUBLISHED_TO_FIELD
from temshift.catalog.where import parse_condition, parse_where

__all__ = ["Catalog", "FIELDS", "PUBLISHED_TO_FIELD", "parse_condition", "parse_where"]
