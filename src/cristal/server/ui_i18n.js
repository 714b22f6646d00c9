"use strict";
// The interface in English, Japanese and German. The catalogues are a JSON data block of the page
// (ui_catalogues.json, inlined by the server). The locale is the one picked in the header (kept in
// localStorage), else the first of the browser's languages (navigator.languages follows Accept-Language)
// that has a catalogue, else English.
const CATALOGUES = JSON.parse(document.getElementById("catalogues").textContent);
const LOCALE_KEY = "cristal.locale";

function pickLocale() {
  const saved = localStorage.getItem(LOCALE_KEY);
  if (saved && CATALOGUES[saved]) return saved;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (CATALOGUES[base]) return base;
  }
  return "en";
}

let locale = pickLocale();

// t(KEY, {name: value}): the string in the current locale, with {name} replaced (as text: callers insert
// the result with textContent). A key missing from a catalogue falls back to English, then to the key itself.
function t(key, vars) {
  const text = (CATALOGUES[locale] && CATALOGUES[locale][key]) || CATALOGUES.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (vars && name in vars ? String(vars[name]) : m));
}

function formatDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d.getTime())) return String(iso);
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(d);
}

function formatNumber(n, digits) {
  const opts = digits === undefined ? {} : { minimumFractionDigits: digits, maximumFractionDigits: digits };
  return new Intl.NumberFormat(locale, opts).format(n);
}

// The page's static strings: data-i18n (text), data-i18n-placeholder and data-i18n-label (aria-label).
function applyI18n() {
  document.documentElement.lang = locale;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  document.getElementById("lang").value = locale;
}

// Called when the person picks a language; the rest of the page re-renders what it shows (onLocaleChange).
const localeListeners = [];
function setLocale(value) {
  locale = CATALOGUES[value] ? value : "en";
  localStorage.setItem(LOCALE_KEY, locale);
  applyI18n();
  for (const listener of localeListeners) listener();
}

applyI18n();
document.getElementById("lang").addEventListener("change", (ev) => setLocale(ev.target.value));
