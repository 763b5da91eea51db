"""Revision scripts. A package so that wheels and frozen builds ship them."""
