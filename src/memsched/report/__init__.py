"""Reports: rich tables for terminals, JSON documents, HTML with charts, Chrome/Perfetto traces."""
