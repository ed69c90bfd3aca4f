"""The monthly review (`nurture report`): its figures, the terminal summary and the self-contained HTML report."""
