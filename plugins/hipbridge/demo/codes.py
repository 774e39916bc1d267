"""The demo hospital's local code dictionaries (本院字典), as data.

Why this module exists: the demo HIS/LIS/PACS store *vendor* codes (M/F, 1/2/3 …, local
department ids such as 0301, LIS item codes such as GLU), never the province's codes, so the
mapping layer (数据对码) has real work to do. The mapping engineer builds the reviewed local
mappings (`mappings/local/<hospital>/<set>.csv`) from this file; the generator draws every code it
writes from here, and a test checks that every listed code occurs in the generated data.

Each entry:
    "<local set id>": {
        "domain": value-domain id as in shared/reference/codes.md (or a platform-defined list id),
        "label": Chinese name of the dictionary,
        "codes": {local code: local name},          # what the HIS stores / displays
        "standard": {local code: standard code},    # the hospital's own cross-walk note, to review
    }

`standard` is the vendor dictionary's "对照" column: a suggestion to be reviewed and approved,
not a decision; a code absent from it has no obvious counterpart. Diagnoses and operations are
already coded in 国家临床版 2.0 by the HIS (as most Chinese hospitals do since 2019), so their
local codes equal the standard codes.

Domain ids that codes.md does not name (platform-defined lists) are provisional; they must
match the ids the mapping layer publishes in `mappings/standard/_domains.yaml`.
"""

from __future__ import annotations

LOCAL_CODE_SETS: dict[str, dict] = {
    # ------------------------------------------------------------------ demographics (HIS)
    "his_sex": {
        "domain": "GB/T 2261.1", "label": "HIS性别",
        "codes": {"M": "男", "F": "女", "U": "不详"},
        "standard": {"M": "1", "F": "2", "U": "0"},
    },
    "his_id_type": {
        "domain": "CV02.01.101", "label": "HIS证件类型",
        "codes": {"1": "身份证", "2": "户口本", "3": "护照", "5": "港澳通行证", "9": "其他"},
        "standard": {"1": "01", "2": "02", "3": "03", "5": "06", "9": "99"},
    },
    "his_nation": {
        # The vendor stores the national code without its leading zero (1 = 汉族).
        "domain": "GB/T 3304", "label": "HIS民族",
        "codes": {"1": "汉族", "8": "壮族", "13": "瑶族", "6": "苗族", "12": "侗族", "32": "仫佬族",
                  "36": "毛南族", "49": "京族", "3": "回族", "88": "其他民族", "99": "外国籍"},
        "standard": {"1": "01", "8": "08", "13": "13", "6": "06", "12": "12", "32": "32", "36": "36",
                     "49": "49", "3": "03", "88": "97", "99": "98"},
    },
    "his_marital": {
        # 病案首页 numbering (1 未婚 … 9 其他); the platform declares GB/T 2261.2 (10/20/30/40/90).
        "domain": "GB/T 2261.2", "label": "HIS婚姻状况",
        "codes": {"1": "未婚", "2": "已婚", "3": "丧偶", "4": "离婚", "9": "其他"},
        "standard": {"1": "10", "2": "20", "3": "30", "4": "40", "9": "90"},
    },
    "his_country": {
        "domain": "GB/T 2659", "label": "HIS国籍",
        "codes": {"CN": "中国", "VN": "越南", "HK": "中国香港"},
        "standard": {"CN": "156", "VN": "704", "HK": "344"},
    },
    "his_occupation": {
        "domain": "GB/T 6565", "label": "HIS职业",
        "codes": {"NM": "农民", "GR": "工人", "ZY": "专业技术人员", "GB": "公务员", "XS": "学生",
                  "LT": "离退休", "WY": "无业", "QT": "其他"},
        "standard": {"NM": "5", "GR": "6", "ZY": "2", "GB": "1", "XS": "8", "LT": "8", "WY": "8", "QT": "8"},
    },
    "his_relation": {
        "domain": "GB/T 4761", "label": "HIS联系人关系",
        "codes": {"PO": "配偶", "ZN": "子女", "FM": "父母", "XD": "兄弟姐妹", "QT": "其他"},
        "standard": {"PO": "10", "ZN": "20", "FM": "50", "XD": "70", "QT": "99"},
    },
    "his_occupation_homepage": {
        # The same HIS occupations, reported on the 病案首页 as GB/T 2261.4 从业状况(个人身份) (codes.md §9 (c)).
        "domain": "GB/T 2261.4", "label": "HIS职业(病案首页)",
        "codes": {"NM": "农民", "GR": "工人", "ZY": "专业技术人员", "GB": "公务员", "XS": "学生",
                  "LT": "离退休", "WY": "无业", "QT": "其他"},
        "standard": {"NM": "27", "GR": "24", "ZY": "13", "GB": "11", "XS": "31", "LT": "80", "WY": "70", "QT": "90"},
    },
    "his_division": {
        # Residence county: the HIS stores its own area ids; the standard is the GB/T 2260 code.
        "domain": "GB/T 2260", "label": "HIS地区",
        "codes": {"BS01": "右江区", "BS02": "田阳区", "BS03": "田东县", "BS04": "德保县", "BS05": "那坡县",
                  "BS06": "凌云县", "BS07": "乐业县", "BS08": "田林县", "BS09": "西林县", "BS10": "隆林各族自治县",
                  "BS11": "靖西市", "BS12": "平果市", "NN01": "南宁市"},
        "standard": {"BS01": "451002", "BS02": "451003", "BS03": "451022", "BS04": "451024", "BS05": "451026",
                     "BS06": "451027", "BS07": "451028", "BS08": "451029", "BS09": "451030", "BS10": "451031",
                     "BS11": "451081", "BS12": "451082", "NN01": "450100"},
    },
    "his_card_type": {
        "domain": "GX.KLX", "label": "HIS就诊卡类型",
        "codes": {"1": "院内就诊卡", "2": "社保卡", "3": "居民身份证", "4": "电子健康卡"},
    },
    "his_pay_method": {
        "domain": "CV07.10.005", "label": "HIS费别",
        "codes": {"ZG": "职工医保", "JM": "城乡居民医保", "ZF": "自费", "GF": "公费", "SY": "商业保险"},
        "standard": {"ZG": "01", "JM": "02", "ZF": "07", "GF": "06", "SY": "05"},
    },
    # ------------------------------------------------------------------ organisation
    "his_dept": {
        # Local department / ward ids → 医疗机构诊疗科目名录 (平台科室代码).
        "domain": "GX.PTKSDM", "label": "HIS科室",
        "codes": {
            "0301": "呼吸内科", "0302": "消化内科", "0303": "神经内科", "0304": "心血管内科", "0306": "肾内科",
            "0307": "内分泌科", "0401": "普通外科", "0403": "骨科", "0404": "泌尿外科", "0405": "胸外科",
            "0501": "妇科", "0502": "产科", "0701": "儿科", "1001": "眼科", "1101": "耳鼻咽喉科",
            "1301": "皮肤科", "1901": "肿瘤科", "2001": "急诊科", "2601": "麻醉科", "2801": "重症医学科",
            "3001": "检验科", "3101": "病理科", "3201": "放射科", "3205": "超声科", "3206": "心电图室",
            "5001": "中医科", "6001": "药剂科",
            "B0301": "呼吸内科病区", "B0302": "消化内科病区", "B0303": "神经内科病区", "B0304": "心血管内科病区",
            "B0307": "内分泌科病区", "B0401": "普通外科病区", "B0403": "骨科病区", "B0404": "泌尿外科病区",
            "B0405": "胸外科病区", "B0501": "妇科病区", "B0502": "产科病区", "B0701": "儿科病区",
            "B1001": "眼科病区", "B1101": "耳鼻咽喉科病区", "B1901": "肿瘤科病区",
            "B2801": "重症医学科病区",
        },
        "standard": {
            "0301": "03.01", "0302": "03.02", "0303": "03.03", "0304": "03.04", "0306": "03.06",
            "0307": "03.07", "0401": "04.01", "0403": "04.03", "0404": "04.04", "0405": "04.05",
            "0501": "05.01", "0502": "05.02", "0701": "07", "1001": "10", "1101": "11", "1301": "13",
            "1901": "19", "2001": "20", "2601": "26", "2801": "28", "3001": "30", "3101": "31",
            "3201": "32.01", "3205": "32.05", "3206": "32.06", "5001": "50",
            "B0301": "03.01", "B0302": "03.02", "B0303": "03.03", "B0304": "03.04", "B0307": "03.07",
            "B0401": "04.01", "B0403": "04.03", "B0404": "04.04", "B0405": "04.05", "B0501": "05.01",
            "B0502": "05.02", "B0701": "07", "B1001": "10", "B1101": "11", "B1901": "19", "B2801": "28",
        },
    },
    "his_title": {
        "domain": "GX.ZCDM", "label": "HIS职称",
        "codes": {"ZR": "主任医师", "FZR": "副主任医师", "ZZ": "主治医师", "YS": "住院医师", "ZGHS": "主管护师",
                  "HS": "护师", "JS": "技师", "YSS": "药师"},
        "standard": {"ZR": "1", "FZR": "2", "ZZ": "3", "YS": "4", "ZGHS": "3", "HS": "4", "JS": "4", "YSS": "4"},
    },
    # ------------------------------------------------------------------ outpatient
    "his_visit_type": {
        "domain": "CV09.00.404", "label": "HIS就诊类型",
        "codes": {"O": "门诊", "E": "急诊", "I": "住院"},
        "standard": {"O": "1", "E": "2", "I": "3"},
    },
    "his_reg_type": {
        "domain": "GX.GHLB", "label": "HIS号别",
        "codes": {"PT": "普通号", "ZJ": "专家号", "JZ": "急诊号", "TX": "特需号"},
    },
    "his_reg_channel": {
        "domain": "GX.YYFS", "label": "HIS预约渠道",
        "codes": {"CK": "窗口", "ZZJ": "自助机", "WX": "微信公众号", "DH": "电话", "PT": "预约平台"},
    },
    "his_presc_type": {
        "domain": "GX.CFLB", "label": "HIS处方类别",
        "codes": {"PT": "普通处方", "JZ": "急诊处方", "EK": "儿科处方", "JS2": "第二类精神药品处方"},
    },
    "his_dosage_form": {
        "domain": "CV08.50.002", "label": "HIS剂型",
        "codes": {"PJ": "片剂", "JN": "胶囊", "ZSY": "注射液", "FZ": "粉针剂", "KL": "颗粒剂", "KFY": "口服液",
                  "SY": "输液", "RG": "软膏", "WJ": "雾化吸入剂"},
        "standard": {"PJ": "01", "JN": "19", "ZSY": "16", "FZ": "15", "KL": "54", "KFY": "31", "SY": "18",
                     "RG": "48", "WJ": "60"},
    },
    "his_route": {
        "domain": "CV06.00.102", "label": "HIS给药途径",
        "codes": {"PO": "口服", "IVGTT": "静脉滴注", "IV": "静脉推注", "IM": "肌肉注射", "H": "皮下注射",
                  "WY": "外用", "XR": "雾化吸入"},
        "standard": {"PO": "1", "IVGTT": "404", "IV": "404", "IM": "403", "H": "401", "WY": "6", "XR": "5"},
    },
    "his_frequency": {
        "domain": "CV06.00.228", "label": "HIS频次",
        "codes": {"QD": "每日一次", "BID": "每日两次", "TID": "每日三次", "QID": "每日四次", "Q8H": "每8小时一次",
                  "Q12H": "每12小时一次", "QN": "每晚一次", "ST": "立即", "PRN": "必要时"},
        "standard": {"QD": "9", "BID": "1", "TID": "99", "QID": "10", "Q8H": "8", "Q12H": "4", "QN": "3",
                     "ST": "13", "PRN": "99"},
    },
    "his_diag": {
        # 国家临床版 2.0 (ICD-10), as stored by the HIS diagnosis dictionary.
        "domain": "ICD-10", "label": "HIS诊断字典",
        "codes": {
            "J06.900": "急性上呼吸道感染", "J20.900": "急性支气管炎", "J18.900": "肺炎",
            "J44.100": "慢性阻塞性肺病伴有急性加重", "J45.900": "哮喘", "J03.900": "急性扁桃体炎",
            "J35.000": "慢性扁桃体炎", "I10.x00": "原发性高血压", "I25.103": "冠状动脉粥样硬化性心脏病",
            "I20.000": "不稳定型心绞痛", "I50.900": "心力衰竭", "I63.900": "脑梗死", "E11.900": "2型糖尿病",
            "E78.500": "高脂血症", "E03.900": "甲状腺功能减退症", "K29.500": "慢性胃炎", "K21.900": "胃食管反流病",
            "K35.800": "急性阑尾炎", "K80.200": "胆囊结石", "K40.900": "腹股沟疝", "K59.000": "便秘",
            "A09.900": "急性胃肠炎", "B18.100": "慢性乙型病毒性肝炎", "N39.000": "泌尿道感染",
            "N18.900": "慢性肾脏病", "N40.x00": "前列腺增生", "M54.500": "腰痛", "M17.900": "膝关节病",
            "S72.000": "股骨颈骨折", "S52.500": "桡骨下端骨折", "O80.900": "单胎顺产",
            "O82.000": "经选择性剖宫产术的分娩", "C34.900": "肺恶性肿瘤", "C16.900": "胃恶性肿瘤",
            "C50.900": "乳房恶性肿瘤", "D25.900": "子宫平滑肌瘤", "H25.900": "老年性白内障", "H10.900": "结膜炎",
            "L30.900": "皮炎", "R50.900": "发热", "R51.x00": "头痛", "G47.000": "失眠", "F32.900": "抑郁发作",
            "Z51.100": "肿瘤化学治疗疗程",
        },
    },
    "his_diag_type": {
        "domain": "GX.ZDLB", "label": "HIS诊断类别",
        "codes": {"MZ": "门诊诊断", "RY": "入院诊断", "CY": "出院诊断"},
    },
    # ------------------------------------------------------------------ inpatient
    "his_education": {
        "domain": "GB/T 4658", "label": "HIS文化程度",
        "codes": {"XX": "小学", "CZ": "初中", "GZ": "高中", "DZ": "大专", "BK": "本科"},
        "standard": {"XX": "81", "CZ": "71", "GZ": "61", "DZ": "31", "BK": "21"},
    },
    "his_insur_type": {
        "domain": "CV02.01.204", "label": "HIS医保类别",
        "codes": {"ZG": "职工医保", "JM": "城乡居民医保", "GF": "公费", "SY": "商业保险"},
        "standard": {"ZG": "1", "JM": "2", "GF": "4", "SY": "7"},
    },
    "his_diag_system": {
        "domain": "diagnosis_code_type", "label": "HIS诊断编码体系",
        "codes": {"ICD10": "ICD-10国家临床版2.0", "GB95": "中医病证分类与代码(GB/T 15657-1995)"},
        "standard": {"ICD10": "01", "GB95": "02"},
    },
    "his_tcm_disease": {
        "domain": "GB/T 15657", "label": "HIS中医病名",
        "codes": {"ZYB01": "腰痛病", "ZYB02": "不寐病"},
        "standard": {"ZYB01": "BNS150", "ZYB02": "BNX030"},
    },
    "his_tcm_syndrome": {
        "domain": "GB/T 15657", "label": "HIS中医证候",
        "codes": {"ZYZ01": "气滞血瘀证", "ZYZ02": "心脾两虚证", "ZYZ03": "肝肾亏虚证"},
        "standard": {"ZYZ01": "ZBQX60", "ZYZ02": "ZZXPX0", "ZYZ03": "ZZSGS0"},
    },
    "his_admit_route": {
        "domain": "CV09.00.403", "label": "HIS入院途径",
        "codes": {"MZ": "门诊", "JZ": "急诊", "ZR": "外院转入", "QT": "其他"},
        "standard": {"MZ": "2", "JZ": "1", "ZR": "3", "QT": "9"},
    },
    "his_discharge_way": {
        "domain": "CV06.00.226", "label": "HIS离院方式",
        "codes": {"01": "医嘱离院", "02": "医嘱转院", "03": "转社区/乡镇卫生院", "04": "自动出院", "05": "死亡",
                  "99": "其他"},
        "standard": {"01": "1", "02": "2", "03": "3", "04": "4", "05": "5", "99": "9"},
    },
    "his_admit_condition": {
        "domain": "GX.RYBQ", "label": "HIS入院病情",
        "codes": {"Y": "有", "LC": "临床未确定", "BM": "情况不明", "W": "无"},
        "standard": {"Y": "1", "LC": "2", "BM": "3", "W": "4"},
    },
    "his_order_class": {
        "domain": "CV06.00.229", "label": "HIS医嘱类别",
        "codes": {"A": "药疗", "C": "检验", "D": "检查", "F": "手术", "E": "治疗", "H": "护理", "I": "膳食"},
        "standard": {"A": "1", "C": "3", "D": "2", "F": "4", "E": "5", "H": "99", "I": "99"},
    },
    "his_order_term": {
        "domain": "GX.YZLB", "label": "HIS医嘱期效",
        "codes": {"0": "临时", "1": "长期"},
        "standard": {"0": "2", "1": "1"},
    },
    "his_abo": {
        "domain": "CV04.50.005", "label": "HIS ABO血型",
        "codes": {"A": "A型", "B": "B型", "O": "O型", "AB": "AB型", "U": "不详", "W": "未查"},
        "standard": {"A": "1", "B": "2", "O": "3", "AB": "4", "U": "5", "W": "6"},
    },
    "his_rh": {
        "domain": "CV04.50.020", "label": "HIS Rh血型",
        "codes": {"阴": "阴性", "阳": "阳性", "不详": "不详", "未查": "未查"},
        "standard": {"阴": "1", "阳": "2", "不详": "3", "未查": "4"},
    },
    # ------------------------------------------------------------------ surgery
    "his_oper": {
        # 手术操作分类代码国家临床版 2.0 (ICD-9-CM-3 lineage), as stored by the HIS.
        "domain": "ICD-9-CM-3", "label": "HIS手术字典",
        "codes": {
            "47.0100": "腹腔镜下阑尾切除术", "51.2300": "腹腔镜下胆囊切除术", "53.0000": "单侧腹股沟疝修补术",
            "74.1x00": "子宫下段剖宫产术", "73.5900": "手法助产", "13.4100": "白内障超声乳化抽吸术",
            "13.7100": "人工晶状体置入术伴白内障摘出术", "79.3500": "股骨骨折切开复位内固定术",
            "81.5100": "全髋关节置换术", "81.5400": "全膝关节置换术", "36.0700": "药物洗脱冠状动脉支架置入术",
            "88.5500": "单根导管冠状动脉造影", "68.2900": "子宫病损切除术", "32.4100": "胸腔镜下肺叶切除术",
            "43.7x00": "胃部分切除术伴胃空肠吻合术", "28.2x00": "扁桃体切除术",
        },
    },
    "his_oper_level": {
        "domain": "CV05.10.024", "label": "HIS手术级别",
        "codes": {"一级": "一级手术", "二级": "二级手术", "三级": "三级手术", "四级": "四级手术"},
        "standard": {"一级": "1", "二级": "2", "三级": "3", "四级": "4"},
    },
    "his_anesthesia": {
        "domain": "CV06.00.103", "label": "HIS麻醉方式",
        "codes": {"QM": "全身麻醉", "YM": "腰麻", "YMW": "硬膜外麻醉", "YYLH": "腰硬联合麻醉", "SJZZ": "神经阻滞",
                  "JM": "局部麻醉"},
        "standard": {"QM": "1", "YM": "21", "YMW": "22", "YYLH": "43", "SJZZ": "33", "JM": "3"},
    },
    "his_incision": {
        "domain": "GX.QKLB", "label": "HIS切口类别",
        "codes": {"0": "0类切口", "1": "I类切口", "2": "II类切口", "3": "III类切口"},
        "standard": {"0": "0", "1": "1", "2": "2", "3": "3"},
    },
    "his_healing": {
        "domain": "GX.YHDJ", "label": "HIS愈合等级",
        "codes": {"甲": "甲级愈合", "乙": "乙级愈合", "丙": "丙级愈合", "其他": "其他"},
    },
    # ------------------------------------------------------------------ fees
    "his_fee_class": {
        "domain": "GX.SFXMLB", "label": "HIS收费类别",
        "codes": {"GH": "挂号费", "ZC": "诊查费", "XY": "西药费", "ZCY": "中成药费", "HY": "化验费", "JC": "检查费",
                  "ZL": "治疗费", "SS": "手术费", "CL": "卫生材料费", "CW": "床位费", "HL": "护理费"},
    },
    "his_settle_type": {
        "domain": "GX.JSLX", "label": "HIS结算类型",
        "codes": {"MZ": "门诊收费", "GH": "挂号收费", "CY": "出院结算"},
    },
    # ------------------------------------------------------------------ laboratory (LIS)
    "lis_panel": {
        # LIS 组合项目 → 广西检查检验结果互认项目 (mappings/standard/gx_recognition_items.csv, a reconstruction);
        # blood / urine cultures are not 互认 items.
        "domain": "GX.HRXM", "label": "LIS组合项目",
        "codes": {"XCG": "血常规", "GGN": "肝功能", "SGN": "肾功能", "XZ4": "血脂四项", "KFXT": "空腹血糖",
                  "DJZ": "电解质", "NCG": "尿常规", "CRP": "C反应蛋白", "NX4": "凝血四项", "YG5": "乙肝两对半",
                  "THXHDB": "糖化血红蛋白", "XPY": "血培养+药敏", "NPY": "尿培养+药敏"},
        "standard": {"XCG": "HRJY0001", "GGN": "HRJY0002", "SGN": "HRJY0003", "XZ4": "HRJY0004", "KFXT": "HRJY0005",
                     "DJZ": "HRJY0006", "NCG": "HRJY0007", "CRP": "HRJY0008", "NX4": "HRJY0009", "YG5": "HRJY0010",
                     "THXHDB": "HRJY0011"},
    },
    "lis_item": {
        # LIS 检验指标; `standard` is the LOINC code the LIS vendor's dictionary notes.
        "domain": "LOINC", "label": "LIS检验指标",
        "codes": {
            "WBC": "白细胞计数", "RBC": "红细胞计数", "HGB": "血红蛋白", "PLT": "血小板计数", "NEUT%": "中性粒细胞百分比",
            "LYM%": "淋巴细胞百分比", "HCT": "红细胞压积",
            "MCV": "平均红细胞体积", "MCH": "平均红细胞血红蛋白量", "MCHC": "平均红细胞血红蛋白浓度",
            "MONO%": "单核细胞百分比", "EOS%": "嗜酸性粒细胞百分比", "RDW-CV": "红细胞分布宽度",
            "ALP": "碱性磷酸酶", "U-KET": "尿酮体", "U-NIT": "尿亚硝酸盐",
            "ALT": "丙氨酸氨基转移酶", "AST": "天门冬氨酸氨基转移酶", "TBIL": "总胆红素", "DBIL": "直接胆红素",
            "TP": "总蛋白", "ALB": "白蛋白", "GGT": "γ-谷氨酰转移酶",
            "UREA": "尿素", "CREA": "肌酐", "UA": "尿酸",
            "TC": "总胆固醇", "TG": "甘油三酯", "HDL-C": "高密度脂蛋白胆固醇", "LDL-C": "低密度脂蛋白胆固醇",
            "GLU": "葡萄糖", "K": "钾", "NA": "钠", "CL": "氯", "CA": "钙",
            "U-PRO": "尿蛋白", "U-GLU": "尿糖", "U-BLD": "尿潜血", "U-LEU": "尿白细胞酯酶", "U-SG": "尿比重",
            "U-PH": "尿酸碱度", "CRP": "C反应蛋白", "PT": "凝血酶原时间", "APTT": "活化部分凝血活酶时间",
            "FIB": "纤维蛋白原", "TT": "凝血酶时间", "HBSAG": "乙肝表面抗原", "HBSAB": "乙肝表面抗体",
            "HBEAG": "乙肝e抗原", "HBEAB": "乙肝e抗体", "HBCAB": "乙肝核心抗体", "HBA1C": "糖化血红蛋白",
        },
        "standard": {
            "WBC": "6690-2", "RBC": "789-8", "HGB": "718-7", "PLT": "777-3", "NEUT%": "770-8", "LYM%": "736-9",
            "HCT": "4544-3", "MCV": "787-2", "MCH": "785-6", "MCHC": "786-4", "MONO%": "5905-5",
            "EOS%": "713-8", "RDW-CV": "788-0", "ALP": "6768-6", "U-KET": "2514-8", "U-NIT": "5802-4",
            "ALT": "1742-6", "AST": "1920-8", "TBIL": "1975-2", "DBIL": "1968-7", "TP": "2885-2",
            "ALB": "1751-7", "GGT": "2324-2", "UREA": "3091-6", "CREA": "2160-0", "UA": "3084-1", "TC": "2093-3",
            "TG": "2571-8", "HDL-C": "2085-9", "LDL-C": "13457-7", "GLU": "2345-7", "K": "2823-3", "NA": "2951-2",
            "CL": "2075-0", "CA": "17861-6", "U-PRO": "20454-5", "U-GLU": "25428-4", "U-BLD": "5794-3",
            "U-LEU": "5799-2", "U-SG": "5811-5", "U-PH": "5803-2", "CRP": "1988-5", "PT": "5902-2",
            "APTT": "3173-2", "FIB": "3255-7", "TT": "3243-3", "HBSAG": "5196-1", "HBSAB": "22322-2",
            "HBEAG": "13954-3", "HBEAB": "22320-6", "HBCAB": "22316-4", "HBA1C": "4548-4",
        },
    },
    "lis_sex": {
        # The LIS keeps the sex as text received from the HIS interface.
        "domain": "GB/T 2261.1", "label": "LIS性别",
        "codes": {"男": "男", "女": "女", "未知": "未知"},
        "standard": {"男": "1", "女": "2", "未知": "0"},
    },
    "lis_specimen": {
        "domain": "GX.BBLB", "label": "LIS标本类型",
        "codes": {"XQ": "血清", "QX": "全血", "XJ": "血浆", "NY": "尿液"},
    },
    "lis_bacteria": {
        # Local organism ids; `standard` is the WHONET code.
        "domain": "WHONET.ORG", "label": "LIS细菌",
        "codes": {"B001": "大肠埃希菌", "B002": "肺炎克雷伯菌", "B003": "金黄色葡萄球菌", "B004": "铜绿假单胞菌",
                  "B005": "鲍曼不动杆菌", "B006": "粪肠球菌"},
        "standard": {"B001": "eco", "B002": "kpn", "B003": "sau", "B004": "pae", "B005": "aba", "B006": "efa"},
    },
    "lis_antibiotic": {
        # Local antibiotic ids → platform-unified 药敏代码 (WHONET-style, e.g. AMX).
        "domain": "GX.YMDM", "label": "LIS抗菌药物",
        "codes": {"Y01": "氨苄西林", "Y02": "阿莫西林/克拉维酸", "Y03": "头孢曲松", "Y04": "头孢他啶", "Y05": "头孢吡肟",
                  "Y06": "亚胺培南", "Y07": "美罗培南", "Y08": "左氧氟沙星", "Y09": "庆大霉素", "Y10": "阿米卡星",
                  "Y11": "复方新诺明", "Y12": "哌拉西林/他唑巴坦", "Y13": "苯唑西林", "Y14": "万古霉素",
                  "Y15": "利奈唑胺", "Y16": "红霉素"},
        "standard": {"Y01": "AMP", "Y02": "AMC", "Y03": "CRO", "Y04": "CAZ", "Y05": "FEP", "Y06": "IPM",
                     "Y07": "MEM", "Y08": "LVX", "Y09": "GEN", "Y10": "AMK", "Y11": "SXT", "Y12": "TZP",
                     "Y13": "OXA", "Y14": "VAN", "Y15": "LNZ", "Y16": "ERY"},
    },
    "lis_sir": {
        "domain": "GX.KYJG", "label": "LIS药敏结果",
        "codes": {"敏感": "敏感", "中介": "中介", "耐药": "耐药"},
        "standard": {"敏感": "S", "中介": "I", "耐药": "R"},
    },
    "lis_abnormal": {
        "domain": "GX.JGYCBZ", "label": "LIS结果提示",
        "codes": {"正常": "正常", "↑": "偏高", "↓": "偏低", "阳性": "异常"},
        "standard": {"正常": "N", "↑": "H", "↓": "L", "阳性": "A"},
    },
    # ------------------------------------------------------------------ examinations (PACS / RIS)
    "pacs_modality": {
        "domain": "DICOM.MODALITY", "label": "PACS检查类型",
        "codes": {"CT": "CT", "MRI": "磁共振", "DR": "数字X线", "BC": "B超", "NJ": "内镜", "XD": "心电图"},
        "standard": {"CT": "CT", "MRI": "MR", "DR": "DX", "BC": "US", "NJ": "ES", "XD": "ECG"},
    },
    "pacs_item": {
        # → 广西检查检验结果互认项目; 电子胃镜 and 心电图 are not 互认 items here.
        "domain": "GX.HRXM", "label": "PACS检查项目",
        "codes": {"CT01": "头颅CT平扫", "CT02": "胸部CT平扫", "CT03": "上腹部CT增强", "MR01": "头颅MRI平扫",
                  "MR02": "腰椎MRI平扫", "DR01": "胸部正位片", "DR02": "膝关节正侧位片", "US01": "腹部彩超",
                  "US02": "甲状腺彩超", "US03": "产科彩超", "US04": "心脏彩超", "ES01": "电子胃镜",
                  "ECG01": "常规心电图"},
        "standard": {"CT01": "HRJC0001", "CT02": "HRJC0002", "CT03": "HRJC0003", "MR01": "HRJC0004", "MR02": "HRJC0005",
                     "DR01": "HRJC0006", "DR02": "HRJC0007", "US01": "HRJC0008", "US02": "HRJC0009", "US03": "HRJC0010",
                     "US04": "HRJC0011"},
    },
}


def codes_of(set_id: str) -> list[str]:
    """The local codes of one set, in dictionary order (what the generator samples from)."""
    return list(LOCAL_CODE_SETS[set_id]["codes"])


def name_of(set_id: str, code: str) -> str:
    return LOCAL_CODE_SETS[set_id]["codes"][code]
