"""The examinee's result letter (健診結果報告書): `context` gathers what a signed report says,
`pdf` renders it with weasyprint. Both are used by the single-letter view and the batch print."""
