"""The write pipeline: images (images/) -> vectors (models/) -> points (store/).

Ingest the gallery into a method's collection, resume it, rebuild it beside
the live one and swap it in, and migrate collections between stores.
"""
