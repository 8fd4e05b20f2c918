"""Performance benchmarks for tfdeblur: ``python -m bench [--quick] [--only SECTION,...]``.

Benchmarks are measurements, not tests: nothing here asserts a speed. See
the README's Performance section for the sections, the columns and how to read them.
"""
