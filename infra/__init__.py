"""The AWS CDK app of the nurture engine: one stack composed of one construct per capability."""
