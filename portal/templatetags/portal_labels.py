"""The customer pages' words for the mediator's names (see portal.pages)."""

from django import template

from portal import pages

register = template.Library()
register.filter("step_name", pages.step_name)
register.filter("step_label", pages.step_label)
register.filter("event_label", pages.event_label)
