"""One construct per capability of the nurture engine, composed by `infra.stack.NurtureStack`."""
