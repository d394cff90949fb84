"""Assessments students complete, their attempts and scoring, and the scores sent to the gradebook.

Flow (one way): an attempt is submitted or graded -> its score and the outbox row that will carry
it to the platform are written in one transaction (``delivery.queue_score``) -> a job sends it
through Assignment and Grade Services (``tool/lti/ags.py``) -> the row records the answer.
"""
