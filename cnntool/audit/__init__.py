"""Dataset quality audit: the library behind ``cnntool audit``.

- :mod:`~cnntool.audit.checks`: per-image measurements and CleanVision's scores (dark, light,
  blurry, low_information, grayscale, odd_size, odd_aspect_ratio) with cnntool's departures
  (full-resolution blur judged against look-alike images of the folder);
- :mod:`~cnntool.audit.duplicates`: imagededup's hashes, Hamming and embedding search in bounded
  memory, groups and keepers;
- :mod:`~cnntool.audit.labels`: mislabelled images (cleanlab on cross-validated probes) and
  class balance;
- :mod:`~cnntool.audit.cache`: per-image results keyed on content, version and parameters;
- :mod:`~cnntool.audit.config` and :mod:`~cnntool.audit.rules`: settings and ``--fail-on``;
- :mod:`~cnntool.audit.pipeline`: :func:`run_audit` and the record schema;
- :mod:`~cnntool.audit.report`: the stderr summary and the HTML report;
- :mod:`~cnntool.audit.quarantine`: ``--quarantine`` (move flagged files, with a manifest),
  ``--restore`` (undo) and the ``--keep`` list.

Importing this package imports nothing heavy.
"""
