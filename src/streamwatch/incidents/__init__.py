"""Incidents: lifecycle of graded findings and the alert events their changes emit."""
