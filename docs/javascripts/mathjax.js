// MathJax 3 configuration for pymdownx.arithmatex (generic mode), as in mkdocs-material's
// "Math" guide: typeset only the spans arithmatex marks, and again after each instant
// page load (document$ is mkdocs-material's page observable).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache()
  MathJax.typesetClear()
  MathJax.texReset()
  MathJax.typesetPromise()
})
