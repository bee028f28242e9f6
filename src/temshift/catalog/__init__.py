"""Catalog: the metadata table of raw frames, queries on it, and downloads of its frames (`fetch`)."""

from temshift.catalog.catalog import Catalog
from temshift.catalog.columns import FIELDS, PUBLISHED_TO_FIELD
from temshift.catalog.where import parse_condition, parse_where

__all__ = ["FIELDS", "PUBLISHED_TO_FIELD", "Catalog", "parse_condition", "parse_where"]
